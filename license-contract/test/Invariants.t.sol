// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {LicenseRegistry} from "../src/LicenseRegistry.sol";
import {Base, Vm} from "./Base.sol";

/// Drives the registry with random deposits, receipts (fresh, replayed, stale), withdrawals, revenue
/// withdrawals, price changes and time jumps, and keeps ghost accounting the invariants check.
contract Handler is Base {
    uint256 internal constant CUSTOMERS = 3;
    uint256 internal constant SIGNERS = 2;

    bytes32[2] public pids;
    address[CUSTOMERS] public customers;
    uint256[SIGNERS] internal signerPks;

    // ghosts
    uint256 public ghostDeposited;
    uint256 public ghostCustomerWithdrawn;
    uint256 public ghostRevenueWithdrawn;
    bool public doubleCharge;
    bool public thawBypassed;
    bool public overcharged;
    mapping(bytes32 => uint64) public maxSigned; // key(pid, customer, signer) => highest cumulative signed
    mapping(bytes32 => uint256) public requestedAt; // key(pid, customer) => time of the pending request
    mapping(bytes32 => bytes) internal lastSig;
    mapping(bytes32 => LicenseRegistry.Usage) internal lastReceipt;
    uint256 public calls;

    constructor(LicenseRegistry r) {
        reg = r;
        signerPks[0] = SIGNER_PK;
        signerPks[1] = SIGNER2_PK;
        vm.prank(vendor);
        pids[0] = reg.registerProduct("cheap", 1 gwei);
        vm.prank(address(0xFEED2));
        pids[1] = reg.registerProduct("dear", 0.01 ether);
        for (uint256 c = 0; c < CUSTOMERS; c++) {
            customers[c] = address(uint160(0xC0000 + c));
            for (uint256 p = 0; p < 2; p++) {
                for (uint256 s = 0; s < SIGNERS; s++) {
                    vm.prank(customers[c]);
                    reg.authorizeSigner(pids[p], vm.addr(signerPks[s]));
                }
            }
        }
    }

    function _key(bytes32 p, address c, address s) internal pure returns (bytes32) {
        return keccak256(abi.encode(p, c, s));
    }

    function deposit(uint256 p, uint256 c, uint96 amount) external {
        calls++;
        amount = uint96(_bound(amount, 1, 5 ether));
        address cust = customers[c % CUSTOMERS];
        vm.deal(cust, amount);
        vm.prank(cust);
        reg.deposit{value: amount}(pids[p % 2], address(0));
        ghostDeposited += amount;
    }

    function settleFresh(uint256 p, uint256 c, uint256 s, uint64 delta) external {
        calls++;
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 pk = signerPks[s % SIGNERS];
        address sgn = vm.addr(pk);
        bytes32 k = _key(productId, cust, sgn);
        uint64 cum = maxSigned[k] + uint64(_bound(delta, 1, 1000));
        LicenseRegistry.Usage memory u = LicenseRegistry.Usage(productId, cust, cum, uint64(block.timestamp));
        bytes memory sig = _sign(reg, pk, u);
        LicenseRegistry.SignerStatus memory before = reg.signerStatus(productId, cust, sgn);
        uint256 balBefore = reg.licenseStatus(productId, cust, bytes32(0)).balance;
        (uint64 units, uint256 amount) = reg.settle(u, sig);
        if (before.settledUnits + units > cum) overcharged = true;
        if (amount > balBefore) overcharged = true;
        maxSigned[k] = cum;
        lastReceipt[k] = u;
        lastSig[k] = sig;
    }

    /// Replays the last receipt of a signer: it may only collect what a shortfall left unpaid.
    function settleReplay(uint256 p, uint256 c, uint256 s) external {
        calls++;
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        address sgn = vm.addr(signerPks[s % SIGNERS]);
        bytes32 k = _key(productId, cust, sgn);
        if (lastSig[k].length == 0) return;
        uint64 settledBefore = reg.signerStatus(productId, cust, sgn).settledUnits;
        (uint64 units,) = reg.settle(lastReceipt[k], lastSig[k]);
        if (settledBefore + units > maxSigned[k]) doubleCharge = true;
        if (settledBefore == maxSigned[k] && units != 0) doubleCharge = true;
    }

    /// Signs a receipt below the signer's settled cumulative: it must charge nothing.
    function settleStale(uint256 p, uint256 c, uint256 s, uint64 back) external {
        calls++;
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 pk = signerPks[s % SIGNERS];
        uint64 settled = reg.signerStatus(productId, cust, vm.addr(pk)).settledUnits;
        if (settled == 0) return;
        uint64 cum = uint64(_bound(back, 0, settled));
        LicenseRegistry.Usage memory u = LicenseRegistry.Usage(productId, cust, cum, uint64(block.timestamp));
        (uint64 units, uint256 amount) = reg.settle(u, _sign(reg, pk, u));
        if (units != 0 || amount != 0) doubleCharge = true;
    }

    function requestWithdrawal(uint256 p, uint256 c, uint96 amount) external {
        calls++;
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 bal = reg.licenseStatus(productId, cust, bytes32(0)).balance;
        if (bal == 0) return;
        amount = uint96(_bound(amount, 1, bal));
        vm.prank(cust);
        reg.requestWithdrawal(productId, amount);
        requestedAt[keccak256(abi.encode(productId, cust))] = block.timestamp;
    }

    /// Tries to complete a withdrawal at any time; success before the thaw ends is a violation.
    function completeWithdrawal(uint256 p, uint256 c) external {
        calls++;
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 before = cust.balance;
        vm.prank(cust);
        try reg.completeWithdrawal(productId) returns (uint256 amount) {
            uint256 t = requestedAt[keccak256(abi.encode(productId, cust))];
            if (block.timestamp < t + THAW) thawBypassed = true;
            if (cust.balance - before != amount) thawBypassed = true;
            ghostCustomerWithdrawn += amount;
        } catch {}
    }

    function withdrawRevenue(uint256 who) external {
        calls++;
        address a = who % 3 == 0 ? vendor : who % 3 == 1 ? address(0xFEED2) : treasury;
        uint256 due = reg.revenueOf(a);
        if (due == 0) return;
        vm.prank(a);
        reg.withdraw();
        ghostRevenueWithdrawn += due;
    }

    function setPrice(uint256 p, uint88 price) external {
        calls++;
        price = uint88(_bound(price, 0, 0.02 ether));
        vm.prank(p % 2 == 0 ? vendor : address(0xFEED2));
        reg.setPrice(pids[p % 2], price);
    }

    function warp(uint32 dt) external {
        calls++;
        vm.warp(block.timestamp + _bound(dt, 0, 2 days));
    }

    /// Sum of all escrow balances plus all unwithdrawn revenue.
    function liabilities() external view returns (uint256 sum) {
        for (uint256 p = 0; p < 2; p++) {
            for (uint256 c = 0; c < CUSTOMERS; c++) {
                sum += reg.licenseStatus(pids[p], customers[c], bytes32(0)).balance;
            }
        }
        sum += reg.revenueOf(vendor) + reg.revenueOf(address(0xFEED2)) + reg.revenueOf(treasury);
    }

    /// Account unpaid units must equal the sum over its signers of (seen − settled).
    function unpaidConsistent() external view returns (bool) {
        for (uint256 p = 0; p < 2; p++) {
            for (uint256 c = 0; c < CUSTOMERS; c++) {
                uint256 sum;
                uint256 settledSum;
                for (uint256 s = 0; s < SIGNERS; s++) {
                    LicenseRegistry.SignerStatus memory st = reg.signerStatus(pids[p], customers[c], vm.addr(signerPks[s]));
                    sum += st.seenUnits - st.settledUnits;
                    settledSum += st.settledUnits;
                }
                LicenseRegistry.LicenseStatus memory ls = reg.licenseStatus(pids[p], customers[c], bytes32(0));
                if (ls.unpaidUnits != sum || ls.settledUnits != settledSum) return false;
            }
        }
        return true;
    }
}

contract InvariantsTest {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    LicenseRegistry internal reg;
    Handler internal handler;

    function setUp() public {
        reg = new LicenseRegistry(3000, address(0x7EA5), 1 days);
        handler = new Handler(reg);
    }

    /// forge's invariant runner asks the test contract which contracts to call (forge-std's StdInvariant API).
    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function invariant_EscrowPlusRevenueEqualsContractBalance() public view {
        require(handler.liabilities() == address(reg).balance, "escrow + revenue != contract ETH balance");
        require(
            handler.ghostDeposited() - handler.ghostCustomerWithdrawn() - handler.ghostRevenueWithdrawn()
                == address(reg).balance,
            "ETH in - ETH out != contract ETH balance"
        );
    }

    function invariant_NoReceiptChargesTwice() public view {
        require(!handler.doubleCharge(), "a replayed or stale receipt charged");
        require(!handler.overcharged(), "a receipt charged beyond its cumulative or the balance");
    }

    function invariant_ThawCannotBeBypassed() public view {
        require(!handler.thawBypassed(), "a withdrawal completed before its thaw ended");
    }

    function invariant_UnpaidIsSumOverSigners() public view {
        require(handler.unpaidConsistent(), "account counters disagree with signer counters");
    }
}
