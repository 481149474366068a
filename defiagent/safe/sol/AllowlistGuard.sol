// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The Safe 1.4.1 module entry point this guard calls (ModuleManager).
interface ISafeModuleExecutor {
    function execTransactionFromModuleReturnData(
        address to,
        uint256 value,
        bytes calldata data,
        uint8 operation
    ) external returns (bool success, bytes memory returnData);
}

/// @title AllowlistGuard: the only way the agent's key can move a defiagent Safe's funds.
/// @notice A Safe module. The agent's key calls `execute`; every call is checked against
/// rules generated from the signed allowlist (target and selector pairs, argument
/// conditions, extcodehash pins read at execution) before the Safe runs it. A delegatecall
/// is refused except to the pinned MultiSendCallOnly, whose sub-calls are each checked.
/// A module's calls bypass a Safe transaction guard (Safe 1.4.1 has no module guard), so
/// the checks live here, in the module itself. Only the Safe (its owners, M of N) can change
/// the rules or the agent.
contract AllowlistGuard {
    uint8 internal constant CALL = 0;
    uint8 internal constant DELEGATECALL = 1;

    // Argument conditions, on one 32-byte word of the calldata's head.
    uint8 internal constant RECIPIENT_IS_SAFE = 1; // address == the Safe
    uint8 internal constant SPENDER_IN_SET = 2; // address in the spender set
    uint8 internal constant AT_MOST = 3; // uint <= value
    uint8 internal constant EQUALS = 4; // word == value
    uint8 internal constant TOKEN_PATH = 5; // address[]: every element in the token set
    uint8 internal constant TOKEN = 6; // address in the token set

    bytes4 internal constant MULTI_SEND = 0x8d80ff0a; // multiSend(bytes)

    /// One allowed (target, selector) pair.
    struct FunctionRule {
        address target;
        bytes4 selector;
        bool payable_;
    }

    /// A condition on one argument of `functions[rule]`, read from one 32-byte head word.
    struct Condition {
        uint32 rule;
        uint8 kind;
        uint16 word;
        uint256 value;
    }

    /// The whole rule set, flat (nested dynamic structs are too deep for the ABI decoder).
    struct Config {
        address[] targets;
        bytes32[] codehashes; // extcodehash pin of targets[i]
        FunctionRule[] functions;
        Condition[] conditions;
        address[] spenders;
        address[] tokens;
        address multiSend;
        bytes32 multiSendCodehash;
    }

    struct Check {
        uint8 kind;
        uint16 word;
        uint256 value;
    }

    struct StoredFunction {
        bool allowed;
        bool payable_;
        Check[] checks;
    }

    error NotAgent(address caller);
    error NotSafe(address caller);
    error OperationRefused(uint8 operation);
    error DelegatecallRefused(address to);
    error TargetNotAllowed(address target);
    error CodehashMismatch(address target, bytes32 pinned, bytes32 actual);
    error FunctionNotAllowed(address target, bytes4 selector);
    error ValueRefused(address target, uint256 value);
    error ArgumentRefused(address target, bytes4 selector, uint16 word, uint8 kind);
    error MalformedBatch();
    error ZeroAgent();
    error MalformedConfig();

    event ConfigSet(uint256 indexed epoch, bytes32 configHash, bytes config);
    event AgentChanged(address indexed previous, address indexed agent);

    address public immutable safe;
    address public agent;
    uint256 public epoch; // each setConfig starts a new epoch: old rules are gone at once
    bytes32 public configHash; // keccak256 of the ABI-encoded Config in force
    address public multiSend;
    bytes32 public multiSendCodehash;

    mapping(uint256 => mapping(address => bytes32)) internal pins;
    mapping(uint256 => mapping(address => mapping(bytes4 => StoredFunction))) internal rules;
    mapping(uint256 => mapping(address => bool)) internal spenders;
    mapping(uint256 => mapping(address => bool)) internal tokens;

    constructor(address safe_, address agent_) {
        if (safe_ == address(0) || agent_ == address(0)) revert ZeroAgent();
        safe = safe_;
        agent = agent_;
        emit AgentChanged(address(0), agent_);
    }

    modifier onlySafe() {
        if (msg.sender != safe) revert NotSafe(msg.sender);
        _;
    }

    /// Replace every rule with `config` (an ABI-encoded Config). Only through the Safe.
    function setConfig(bytes calldata config) external onlySafe {
        Config memory c = abi.decode(config, (Config));
        uint256 e = epoch + 1;
        epoch = e;
        if (c.codehashes.length != c.targets.length) revert MalformedConfig();
        for (uint256 t = 0; t < c.targets.length; t++) {
            // The Safe and this guard are never targets: the agent must not reach the
            // Safe's owner, module or guard settings, nor this contract's.
            if (c.codehashes[t] == bytes32(0) || c.targets[t] == safe || c.targets[t] == address(this)) {
                revert MalformedConfig();
            }
            pins[e][c.targets[t]] = c.codehashes[t];
        }
        for (uint256 f = 0; f < c.functions.length; f++) {
            FunctionRule memory fn = c.functions[f];
            if (pins[e][fn.target] == bytes32(0)) revert MalformedConfig();
            StoredFunction storage stored = rules[e][fn.target][fn.selector];
            stored.allowed = true;
            stored.payable_ = fn.payable_;
        }
        for (uint256 k = 0; k < c.conditions.length; k++) {
            Condition memory cond = c.conditions[k];
            if (cond.rule >= c.functions.length) revert MalformedConfig();
            FunctionRule memory owner = c.functions[cond.rule];
            rules[e][owner.target][owner.selector].checks.push(
                Check({kind: cond.kind, word: cond.word, value: cond.value})
            );
        }
        for (uint256 s = 0; s < c.spenders.length; s++) {
            spenders[e][c.spenders[s]] = true;
        }
        for (uint256 k = 0; k < c.tokens.length; k++) {
            tokens[e][c.tokens[k]] = true;
        }
        multiSend = c.multiSend;
        multiSendCodehash = c.multiSendCodehash;
        bytes32 digest = keccak256(config);
        configHash = digest;
        emit ConfigSet(e, digest, config);
    }

    /// Swap the key allowed to call `execute` (key rotation). Only through the Safe.
    function setAgent(address agent_) external onlySafe {
        if (agent_ == address(0)) revert ZeroAgent();
        emit AgentChanged(agent, agent_);
        agent = agent_;
    }

    /// The agent's only entry: run one checked call (or one checked MultiSendCallOnly batch)
    /// from the Safe. Reverts with the rule that refused, or with the call's own revert.
    function execute(
        address to,
        uint256 value,
        bytes calldata data,
        uint8 operation
    ) external returns (bytes memory) {
        if (msg.sender != agent) revert NotAgent(msg.sender);
        if (operation == CALL) {
            _checkCall(to, value, data);
        } else if (operation == DELEGATECALL) {
            _checkBatch(to, value, data);
        } else {
            revert OperationRefused(operation);
        }
        return _run(to, value, data, operation);
    }

    function _run(
        address to,
        uint256 value,
        bytes calldata data,
        uint8 operation
    ) internal returns (bytes memory) {
        (bool ok, bytes memory returned) = ISafeModuleExecutor(safe)
            .execTransactionFromModuleReturnData(to, value, data, operation);
        if (!ok) {
            // The Safe's call reverted: pass its own reason on.
            assembly {
                revert(add(returned, 32), mload(returned))
            }
        }
        return returned;
    }

    /// Whether `execute(to, value, data, operation)` would pass the rules (a view for tools).
    function check(
        address to,
        uint256 value,
        bytes calldata data,
        uint8 operation
    ) external view returns (bool) {
        if (operation == CALL) {
            _checkCall(to, value, data);
        } else if (operation == DELEGATECALL) {
            _checkBatch(to, value, data);
        } else {
            revert OperationRefused(operation);
        }
        return true;
    }

    function _checkBatch(address to, uint256 value, bytes calldata data) internal view {
        address pinned = multiSend;
        if (pinned == address(0) || to != pinned) revert DelegatecallRefused(to);
        if (to.codehash != multiSendCodehash) {
            revert CodehashMismatch(to, multiSendCodehash, to.codehash);
        }
        if (value != 0) revert ValueRefused(to, value);
        // multiSend(bytes): canonical encoding only (offset 32), so this parse and
        // MultiSendCallOnly's read the same bytes.
        if (data.length < 68 || bytes4(data[:4]) != MULTI_SEND) revert MalformedBatch();
        if (uint256(bytes32(data[4:36])) != 32) revert MalformedBatch();
        uint256 length = uint256(bytes32(data[36:68]));
        if (length > data.length - 68) revert MalformedBatch();
        bytes calldata packed = data[68:68 + length];
        uint256 i = 0;
        while (i < length) {
            i = _checkBatchEntry(packed, i);
        }
    }

    /// One entry of a MultiSend batch at `i`; returns where the next one starts.
    function _checkBatchEntry(bytes calldata packed, uint256 i) internal view returns (uint256) {
        // operation (1) | to (20) | value (32) | data length (32) | data
        uint256 left = packed.length - i;
        if (left < 85) revert MalformedBatch();
        address target = address(bytes20(packed[i + 1:i + 21]));
        if (uint8(packed[i]) != CALL) revert DelegatecallRefused(target);
        uint256 size = uint256(bytes32(packed[i + 53:i + 85]));
        if (size > left - 85) revert MalformedBatch();
        _checkCall(target, uint256(bytes32(packed[i + 21:i + 53])), packed[i + 85:i + 85 + size]);
        return i + 85 + size;
    }

    function _checkCall(address to, uint256 value, bytes calldata data) internal view {
        uint256 e = epoch;
        bytes32 pin = pins[e][to];
        if (pin == bytes32(0)) revert TargetNotAllowed(to);
        if (to.codehash != pin) revert CodehashMismatch(to, pin, to.codehash);
        if (data.length < 4) revert FunctionNotAllowed(to, bytes4(0));
        bytes4 selector = bytes4(data[:4]);
        StoredFunction storage fn = rules[e][to][selector];
        if (!fn.allowed) revert FunctionNotAllowed(to, selector);
        if (value != 0 && !fn.payable_) revert ValueRefused(to, value);
        uint256 n = fn.checks.length;
        for (uint256 k = 0; k < n; k++) {
            Check memory c = fn.checks[k];
            if (!_holds(e, c, data)) revert ArgumentRefused(to, selector, c.word, c.kind);
        }
    }

    function _holds(uint256 e, Check memory c, bytes calldata data) internal view returns (bool) {
        uint256 at = 4 + 32 * uint256(c.word);
        if (data.length < at + 32) return false;
        uint256 word = uint256(bytes32(data[at:at + 32]));
        if (c.kind == RECIPIENT_IS_SAFE) return word == uint256(uint160(safe));
        if (c.kind == AT_MOST) return word <= c.value;
        if (c.kind == EQUALS) return word == c.value;
        if (c.kind == SPENDER_IN_SET) return word >> 160 == 0 && spenders[e][address(uint160(word))];
        if (c.kind == TOKEN) return word >> 160 == 0 && tokens[e][address(uint160(word))];
        if (c.kind == TOKEN_PATH) return _tokenPath(e, data, word);
        return false;
    }

    /// An ABI-encoded address[] at head offset `offset`: non-empty, every element a token.
    function _tokenPath(uint256 e, bytes calldata data, uint256 offset) internal view returns (bool) {
        uint256 args = data.length - 4;
        if (offset > args || args - offset < 32) return false;
        uint256 start = 4 + offset;
        uint256 count = uint256(bytes32(data[start:start + 32]));
        if (count == 0 || count > (args - offset - 32) / 32) return false;
        for (uint256 k = 0; k < count; k++) {
            uint256 at = start + 32 + 32 * k;
            uint256 word = uint256(bytes32(data[at:at + 32]));
            if (word >> 160 != 0 || !tokens[e][address(uint160(word))]) return false;
        }
        return true;
    }
}
