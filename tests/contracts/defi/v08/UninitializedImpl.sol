// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

/// Vulnerable: the implementation behind a proxy can be initialised by anyone, who then
/// owns it (and, for an upgradeable implementation, can take it over).
contract OpenImplementation is Initializable {
    address public owner;

    function initialize(address owner_) external initializer {
        owner = owner_;
    }

    function sweep(address payable to) external {
        require(msg.sender == owner, "not owner");
        to.transfer(address(this).balance);
    }
}
