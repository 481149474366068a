// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Every proxy layout defiagent resolves: OpenZeppelin's own ERC-1967, transparent, beacon
// and clone (EIP-1167) contracts, plus small EIP-1822, zos-legacy and Safe-style proxies.
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {TransparentUpgradeableProxy} from "@openzeppelin/contracts/proxy/transparent/TransparentUpgradeableProxy.sol";
import {BeaconProxy} from "@openzeppelin/contracts/proxy/beacon/BeaconProxy.sol";
import {UpgradeableBeacon} from "@openzeppelin/contracts/proxy/beacon/UpgradeableBeacon.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

/// Logic behind the proxies (UUPS: it authorises its own upgrades).
contract BoxV1 is UUPSUpgradeable {
    address public owner;
    uint256 public value;

    function initialize(address owner_) external {
        require(owner == address(0), "initialized");
        owner = owner_;
    }

    function set(uint256 v) external {
        value = v;
    }

    function _authorizeUpgrade(address) internal view override {
        require(msg.sender == owner, "not owner");
    }
}

/// The same storage, other code: what an upgrade after approval swaps in.
contract BoxV2 is BoxV1 {
    function drain(address payable to) external {
        to.transfer(address(this).balance);
    }
}

abstract contract SlotForwarder {
    function _logic() internal view virtual returns (address);

    fallback() external payable {
        address logic = _logic();
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), logic, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch ok
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }

    receive() external payable {}
}

/// EIP-1822 (UUPS draft): the logic address at keccak256("PROXIABLE").
contract Proxy1822 is SlotForwarder {
    bytes32 private constant SLOT = keccak256("PROXIABLE");

    constructor(address logic) {
        bytes32 slot = SLOT;
        assembly { sstore(slot, logic) }
    }

    function _logic() internal view override returns (address logic) {
        bytes32 slot = SLOT;
        assembly { logic := sload(slot) }
    }
}

/// The older OpenZeppelin (zos) layout: implementation and admin at their own slots.
contract ZosProxy is SlotForwarder {
    bytes32 private constant IMPL = keccak256("org.zeppelinos.proxy.implementation");
    bytes32 private constant ADMIN = keccak256("org.zeppelinos.proxy.admin");

    constructor(address logic, address admin) {
        bytes32 impl = IMPL;
        bytes32 adm = ADMIN;
        assembly {
            sstore(impl, logic)
            sstore(adm, admin)
        }
    }

    function _logic() internal view override returns (address logic) {
        bytes32 slot = IMPL;
        assembly { logic := sload(slot) }
    }
}

/// Safe's proxy layout: the singleton in slot 0, answered by masterCopy() without delegating.
contract SafeStyleProxy {
    address internal singleton;

    constructor(address singleton_) {
        singleton = singleton_;
    }

    fallback() external payable {
        assembly {
            let target := and(sload(0), 0xffffffffffffffffffffffffffffffffffffffff)
            if eq(calldataload(0), 0xa619486e00000000000000000000000000000000000000000000000000000000) {
                mstore(0, target)
                return(0, 0x20)
            }
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if eq(ok, 0) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}

/// Makes EIP-1167 minimal proxies with OpenZeppelin's Clones.
contract CloneMaker {
    event Cloned(address clone);

    function make(address logic) external returns (address clone) {
        clone = Clones.clone(logic);
        emit Cloned(clone);
    }
}
