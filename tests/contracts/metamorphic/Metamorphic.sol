// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// A metamorphic deployer: CREATE2 with one fixed init code that copies whatever runtime
// code the factory holds at that moment. Same salt -> same address, any code. Before
// Cancun (EIP-6780), SELFDESTRUCT clears the address and the next deploy puts other code
// there; the test runs anvil with --hardfork shanghai to show a pinned codehash catches it.

interface IRuntimeSource {
    function pendingRuntime() external view returns (bytes memory);
}

/// The fixed init code: returns the factory's pending runtime as the new contract's code.
contract MorphingInit {
    constructor() {
        bytes memory code = IRuntimeSource(msg.sender).pendingRuntime();
        assembly { return(add(code, 32), mload(code)) }
    }
}

contract MetamorphicFactory is IRuntimeSource {
    bytes private pending;

    event Deployed(address at);

    function pendingRuntime() external view returns (bytes memory) {
        return pending;
    }

    function deploy(bytes32 salt, bytes calldata runtime) external returns (address at) {
        pending = runtime;
        at = address(new MorphingInit{salt: salt}());
        delete pending;
        emit Deployed(at);
    }
}

/// What reviewers approve: an honest-looking contract that can be destroyed by its maker.
contract InnocentV1 {
    function hello() external pure returns (uint256) {
        return 1;
    }

    function retire() external {
        // No constructor ran (the code was copied), so the check uses the caller's code.
        require(tx.origin == msg.sender, "EOA only");
        selfdestruct(payable(msg.sender));
    }
}

/// What later sits at the same address.
contract SwappedV2 {
    function hello() external pure returns (uint256) {
        return 2;
    }
}
