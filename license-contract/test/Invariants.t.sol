// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {LicenseRegistry} from "../src/LicenseRegistry.sol";
import {Base, Vm} from "./Base.sol";

/// Drives the registry with random deposits, purchases (fresh, replayed, stale, over-priced,
/// expired, unaffordable), signer (de)authorizations, withdrawals, fee collection, revenue
/// withdrawals, price changes and time jumps, and keeps ghost accounting the invariants check.
contract Handler is Base {
    uint256 internal constant CUSTOMERS = 3;
    uint256 internal constant SIGNERS = 2;
    uint256 internal constant BUYERS = 2;
    address internal constant VENDOR2 = address(0xFEED2);

    bytes32[2] public pids;
    address[CUSTOMERS] public customers;
    uint256[SIGNERS] internal signerPks;
    bytes32[BUYERS] internal buyers;

    // ghosts
    uint256 public ghostDeposited;
    uint256 public ghostCustomerWithdrawn;
    uint256 public ghostRevenueWithdrawn;
    bool public doubleCharge;
    bool public overcharged;
    bool public halfFilled;
    bool public boughtDecreased;
    bool public forbiddenPurchase;
    bool public thawBypassed;
    mapping(bytes32 => uint64) public maxSigned; // key(pid, customer, signer, buyer) => highest cumulative signed
    mapping(bytes32 => uint256) public requestedAt; // key(pid, customer) => time of the pending request
    mapping(bytes32 => bytes) internal lastSig;
    mapping(bytes32 => LicenseRegistry.Usage) internal lastReceipt;
    uint256 public calls;
    uint256 public purchases;

    constructor(LicenseRegistry r) {
        reg = r;
        signerPks[0] = SIGNER_PK;
        signerPks[1] = SIGNER2_PK;
        buyers[0] = BUYER;
        buyers[1] = BUYER2;
        vm.prank(vendor);
        pids[0] = reg.registerProduct("cheap", 1 gwei);
        vm.prank(VENDOR2);
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

    function _key(bytes32 p, address c, address s, bytes32 b) internal pure returns (bytes32) {
        return keccak256(abi.encode(p, c, s, b));
    }

    modifier counted() {
        calls++;
        _;
    }

    function deposit(uint256 p, uint256 c, uint96 amount) external counted {
        amount = uint96(_bound(amount, 1, 5 ether));
        address cust = customers[c % CUSTOMERS];
        vm.deal(cust, amount);
        vm.prank(cust);
        reg.deposit{value: amount}(pids[p % 2], address(0));
        ghostDeposited += amount;
    }

    struct Before {
        bool authorized;
        uint64 bought;
        uint256 balance;
        uint64 accountBought;
        uint256 price;
    }

    function _before(bytes32 productId, address cust, address sgn, bytes32 buyer)
        internal
        view
        returns (Before memory b)
    {
        LicenseRegistry.SignerStatus memory ss = reg.signerStatus(productId, cust, sgn, buyer);
        LicenseRegistry.LicenseStatus memory ls = reg.licenseStatus(productId, cust, bytes32(0));
        b = Before(ss.authorized, ss.boughtUnits, ls.balance, ls.boughtUnits, ls.price);
    }

    /// Submits `u` and checks the outcome against the state before: a purchase is either refused
    /// whole, ignored, or charges exactly (cumulative − bought) × current price.
    function _submit(LicenseRegistry.Usage memory u, bytes memory sig, address sgn) internal {
        Before memory b = _before(u.productId, u.customer, sgn, u.buyer);
        try reg.settle(u, sig) returns (uint64 units, uint256 amount) {
            Before memory a = _before(u.productId, u.customer, sgn, u.buyer);
            if (a.bought < b.bought || a.accountBought < b.accountBought) boughtDecreased = true;
            if (!b.authorized || vm.getBlockTimestamp() > u.expiresAt) forbiddenPurchase = true;
            if (u.cumulativeUnits <= b.bought) {
                if (units != 0 || amount != 0 || a.balance != b.balance) doubleCharge = true;
                return;
            }
            purchases++;
            if (b.price > u.maxPrice) overcharged = true;
            if (units != u.cumulativeUnits - b.bought) halfFilled = true;
            if (amount != uint256(units) * b.price) overcharged = true;
            if (a.bought != u.cumulativeUnits) halfFilled = true;
            if (b.balance - a.balance != amount) halfFilled = true;
        } catch {
            Before memory a = _before(u.productId, u.customer, sgn, u.buyer);
            if (a.balance != b.balance || a.bought != b.bought || a.accountBought != b.accountBought) {
                halfFilled = true;
            }
        }
    }

    /// A fresh receipt above the buyer's highest signed cumulative, with a random cap and expiry.
    function settleFresh(uint256 p, uint256 c, uint256 s, uint256 b, uint64 delta, uint256 capSeed, uint16 ttl)
        external
        counted
    {
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 pk = signerPks[s % SIGNERS];
        address sgn = vm.addr(pk);
        bytes32 buyer = buyers[b % BUYERS];
        bytes32 k = _key(productId, cust, sgn, buyer);
        uint64 cum = maxSigned[k] + uint64(_bound(delta, 1, 1000));
        // mostly a generous cap, sometimes one below the price
        uint128 cap = capSeed % 4 == 0 ? uint128(_bound(capSeed, 0, 0.02 ether)) : uint128(0.05 ether);
        // mostly valid for a while, sometimes already expired
        uint64 expiresAt = uint64(vm.getBlockTimestamp()) + uint64(_bound(ttl, 0, 7200)) - 600;
        LicenseRegistry.Usage memory u = _usageFor(productId, cust, buyer, cum, cap, expiresAt);
        bytes memory sig = _sign(reg, pk, u);
        _submit(u, sig, sgn);
        maxSigned[k] = cum;
        lastReceipt[k] = u;
        lastSig[k] = sig;
    }

    /// Replays the last receipt of a buyer: it may only buy what the chain has not recorded yet.
    function settleReplay(uint256 p, uint256 c, uint256 s, uint256 b) external counted {
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        address sgn = vm.addr(signerPks[s % SIGNERS]);
        bytes32 k = _key(productId, cust, sgn, buyers[b % BUYERS]);
        if (lastSig[k].length == 0) return;
        _submit(lastReceipt[k], lastSig[k], sgn);
    }

    /// Signs a receipt at or below the buyer's counter: it must charge nothing.
    function settleStale(uint256 p, uint256 c, uint256 s, uint256 b, uint64 back) external counted {
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 pk = signerPks[s % SIGNERS];
        bytes32 buyer = buyers[b % BUYERS];
        uint64 bought = reg.signerStatus(productId, cust, vm.addr(pk), buyer).boughtUnits;
        if (bought == 0) return;
        uint64 cum = uint64(_bound(back, 0, bought));
        LicenseRegistry.Usage memory u =
            _usageFor(productId, cust, buyer, cum, uint128(0.05 ether), uint64(vm.getBlockTimestamp()) + 60);
        _submit(u, _sign(reg, pk, u), vm.addr(pk));
    }

    function toggleSigner(uint256 p, uint256 c, uint256 s) external counted {
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        address sgn = vm.addr(signerPks[s % SIGNERS]);
        bool authorized = reg.signerStatus(productId, cust, sgn, bytes32(0)).authorized;
        uint64[BUYERS] memory before;
        for (uint256 b = 0; b < BUYERS; b++) {
            before[b] = reg.signerStatus(productId, cust, sgn, buyers[b]).boughtUnits;
        }
        vm.prank(cust);
        if (authorized) reg.deauthorizeSigner(productId, sgn);
        else reg.authorizeSigner(productId, sgn);
        // (re-)authorization keeps every buyer's counter
        for (uint256 b = 0; b < BUYERS; b++) {
            if (reg.signerStatus(productId, cust, sgn, buyers[b]).boughtUnits != before[b]) boughtDecreased = true;
        }
    }

    function requestWithdrawal(uint256 p, uint256 c, uint96 amount) external counted {
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 bal = reg.licenseStatus(productId, cust, bytes32(0)).balance;
        if (bal == 0) return;
        amount = uint96(_bound(amount, 1, bal));
        vm.prank(cust);
        reg.requestWithdrawal(productId, amount);
        requestedAt[keccak256(abi.encode(productId, cust))] = vm.getBlockTimestamp();
    }

    /// Tries to complete a withdrawal at any time; success before the thaw ends is a violation.
    function completeWithdrawal(uint256 p, uint256 c) external counted {
        bytes32 productId = pids[p % 2];
        address cust = customers[c % CUSTOMERS];
        uint256 before = cust.balance;
        vm.prank(cust);
        try reg.completeWithdrawal(productId) returns (uint256 amount) {
            uint256 t = requestedAt[keccak256(abi.encode(productId, cust))];
            if (vm.getBlockTimestamp() < t + THAW) thawBypassed = true;
            if (cust.balance - before != amount) thawBypassed = true;
            ghostCustomerWithdrawn += amount;
        } catch {}
    }

    function collectFees(uint256 which) external counted {
        address[] memory vs = new address[](which % 2 + 1);
        vs[0] = which % 3 == 0 ? VENDOR2 : vendor;
        if (vs.length == 2) vs[1] = vs[0] == vendor ? VENDOR2 : vendor;
        reg.collectFees(vs);
    }

    function withdrawRevenue(uint256 who) external counted {
        address a = who % 3 == 0 ? vendor : who % 3 == 1 ? VENDOR2 : treasury;
        uint256 due = reg.revenueOf(a);
        if (due == 0) return;
        vm.prank(a);
        reg.withdraw();
        ghostRevenueWithdrawn += due;
    }

    function setPrice(uint256 p, uint88 price) external counted {
        price = uint88(_bound(price, 0, 0.02 ether));
        vm.prank(p % 2 == 0 ? vendor : VENDOR2);
        reg.setPrice(pids[p % 2], price);
    }

    function warp(uint32 dt) external counted {
        vm.warp(vm.getBlockTimestamp() + _bound(dt, 0, 2 days));
    }

    /// Sum of all escrow balances, all withdrawable revenue and all uncollected fees.
    function liabilities() external view returns (uint256 sum) {
        for (uint256 p = 0; p < 2; p++) {
            for (uint256 c = 0; c < CUSTOMERS; c++) {
                sum += reg.licenseStatus(pids[p], customers[c], bytes32(0)).balance;
            }
        }
        sum += reg.revenueOf(vendor) + reg.revenueOf(VENDOR2) + reg.revenueOf(treasury);
        sum += reg.feeOwedBy(vendor) + reg.feeOwedBy(VENDOR2);
    }

    /// An account's bought units equal the sum of its buyers' counters over its signers.
    function accountTotalsConsistent() external view returns (bool) {
        for (uint256 p = 0; p < 2; p++) {
            for (uint256 c = 0; c < CUSTOMERS; c++) {
                uint256 sum;
                for (uint256 s = 0; s < SIGNERS; s++) {
                    for (uint256 b = 0; b < BUYERS; b++) {
                        sum += reg.signerStatus(pids[p], customers[c], vm.addr(signerPks[s]), buyers[b]).boughtUnits;
                    }
                }
                if (reg.licenseStatus(pids[p], customers[c], bytes32(0)).boughtUnits != sum) return false;
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
        vm.warp(1_700_000_000); // receipts expire relative to a realistic clock
        reg = new LicenseRegistry(3000, address(0x7EA5), 1 days);
        handler = new Handler(reg);
    }

    /// forge's invariant runner asks the test contract which contracts to call (forge-std's StdInvariant API).
    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function invariant_EscrowPlusRevenueEqualsContractBalance() public view {
        require(handler.liabilities() == address(reg).balance, "escrow + revenue + fees != contract ETH balance");
        require(
            handler.ghostDeposited() - handler.ghostCustomerWithdrawn() - handler.ghostRevenueWithdrawn()
                == address(reg).balance,
            "ETH in - ETH out != contract ETH balance"
        );
    }

    function invariant_NoReceiptChargesTwice() public view {
        require(!handler.doubleCharge(), "a replayed or stale receipt charged");
        require(!handler.overcharged(), "a purchase charged above the cap or other than units x price");
    }

    function invariant_NoPurchaseIsHalfFilled() public view {
        require(!handler.halfFilled(), "a purchase bought part of its units, or a refused one changed state");
    }

    function invariant_BoughtNeverDecreases() public view {
        require(!handler.boughtDecreased(), "a buyer's counter went down");
    }

    function invariant_OnlyAuthorizedUnexpiredReceiptsBuy() public view {
        require(!handler.forbiddenPurchase(), "an unauthorized signer's or an expired receipt settled");
    }

    function invariant_AccountBoughtIsSumOverSignersAndBuyers() public view {
        require(handler.accountTotalsConsistent(), "account total disagrees with buyer counters");
    }

    function invariant_ThawCannotBeBypassed() public view {
        require(!handler.thawBypassed(), "a withdrawal completed before its thaw ended");
    }
}
