// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {LicenseRegistry} from "../src/LicenseRegistry.sol";

/// The few forge cheatcodes these tests use, declared inline (forge-std is not on a reachable registry).
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function deal(address who, uint256 newBalance) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function expectRevert(bytes calldata revertData) external;
    function expectRevert() external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function assume(bool condition) external pure;
    function warp(uint256 timestamp) external;
    function getBlockTimestamp() external view returns (uint256 timestamp);
    function chainId(uint256 newChainId) external;
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function eip712HashTypedData(string calldata jsonData) external pure returns (bytes32 digest);
    function toString(address value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function toString(uint256 value) external pure returns (string memory);
}

/// Assertions, fixtures and receipt signing shared by the test contracts.
abstract contract Base {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant FEE_BPS = 3000;
    uint64 internal constant THAW = 1 days;
    uint256 internal constant PRICE = 1 gwei;
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    uint256 internal constant SIGNER_PK = 0xA11CE5;
    uint256 internal constant SIGNER2_PK = 0xB0B5;
    uint256 internal constant STRANGER_PK = 0xBAD;
    /// The default buyer (one runtime state directory) and a second one.
    bytes32 internal constant BUYER = keccak256("state dir A");
    bytes32 internal constant BUYER2 = keccak256("state dir B");
    /// Default price cap of test receipts: any price the registry can store.
    uint128 internal constant ANY_PRICE = type(uint88).max;
    /// Default validity of test receipts.
    uint64 internal constant VALIDITY = 1 hours;

    address internal treasury = address(0x7EA5);
    address internal vendor = address(0xFEED);
    address internal customer = address(0xC057);
    address internal signer;
    address internal signer2;

    LicenseRegistry internal reg;
    bytes32 internal pid;
    bytes32 internal constant CODE = keccak256("plaintext wasm");

    function _deploy() internal {
        reg = new LicenseRegistry(FEE_BPS, treasury, THAW);
        signer = vm.addr(SIGNER_PK);
        signer2 = vm.addr(SIGNER2_PK);
        vm.prank(vendor);
        pid = reg.registerProduct("algo", PRICE);
        vm.prank(vendor);
        reg.publishRelease(pid, CODE);
        vm.deal(customer, 100 ether);
        vm.prank(customer);
        reg.deposit{value: 1 ether}(pid, address(0));
        vm.prank(customer);
        reg.authorizeSigner(pid, signer);
    }

    /// A receipt of the default buyer, accepting any price, valid for an hour from now.
    function _usage(bytes32 productId, address cust, uint64 cumulative)
        internal
        view
        returns (LicenseRegistry.Usage memory)
    {
        return _usageFor(productId, cust, BUYER, cumulative, ANY_PRICE, _now() + VALIDITY);
    }

    function _usageFor(
        bytes32 productId,
        address cust,
        bytes32 buyer,
        uint64 cumulative,
        uint128 maxPrice,
        uint64 expiresAt
    ) internal pure returns (LicenseRegistry.Usage memory) {
        return LicenseRegistry.Usage({
            productId: productId,
            customer: cust,
            buyer: buyer,
            cumulativeUnits: cumulative,
            maxPrice: maxPrice,
            expiresAt: expiresAt
        });
    }

    /// The current block time (not block.timestamp: via-IR may reuse a value read before vm.warp).
    function _now() internal view returns (uint64) {
        return uint64(vm.getBlockTimestamp());
    }

    function _sign(LicenseRegistry r, uint256 pk, LicenseRegistry.Usage memory u) internal view returns (bytes memory) {
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(pk, r.hashUsage(u));
        return abi.encodePacked(rr, s, v);
    }

    function _settle(uint256 pk, uint64 cumulative) internal returns (uint64 units, uint256 amount) {
        LicenseRegistry.Usage memory u = _usage(pid, customer, cumulative);
        return reg.settle(u, _sign(reg, pk, u));
    }

    function _settleFor(uint256 pk, bytes32 buyer, uint64 cumulative) internal returns (uint64 units, uint256 amount) {
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, buyer, cumulative, ANY_PRICE, _now() + VALIDITY);
        return reg.settle(u, _sign(reg, pk, u));
    }

    function _bought(uint256 pk, bytes32 buyer) internal view returns (uint64) {
        return reg.signerStatus(pid, customer, vm.addr(pk), buyer).boughtUnits;
    }

    function _status() internal view returns (LicenseRegistry.LicenseStatus memory) {
        return reg.licenseStatus(pid, customer, CODE);
    }

    function _reason() internal view returns (uint8) {
        return uint8(reg.licenseStatus(pid, customer, CODE).reason);
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        return lo + (x % (hi - lo + 1));
    }

    function assertEq(uint256 a, uint256 b, string memory why) internal pure {
        if (a != b) revert(string.concat(why, ": ", _u(a), " != ", _u(b)));
    }

    function assertEq(address a, address b, string memory why) internal pure {
        if (a != b) revert(string.concat(why, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory why) internal pure {
        if (a != b) revert(string.concat(why, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertTrue(bool c, string memory why) internal pure {
        if (!c) revert(why);
    }

    function _u(uint256 x) private pure returns (string memory) {
        return vm.toString(x);
    }
}
