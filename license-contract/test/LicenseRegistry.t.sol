// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {LicenseRegistry} from "../src/LicenseRegistry.sol";
import {Base, Vm} from "./Base.sol";

/// Unit, fuzz and attack tests of LicenseRegistry.
contract LicenseRegistryTest is Base {
    event Settled(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        bytes32 buyer,
        uint64 units,
        uint256 amount,
        uint64 buyerCumulative,
        uint256 price
    );
    event ReceiptIgnored(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        bytes32 buyer,
        uint64 cumulativeUnits,
        uint64 bought
    );
    event Deposited(
        bytes32 indexed productId, address indexed customer, address indexed from, uint256 amount, uint256 balance
    );
    event SignerDeauthorized(bytes32 indexed productId, address indexed customer, address indexed signer);
    event FeesCollected(address indexed vendor, uint256 amount);

    function setUp() public {
        _deploy();
    }

    // ------------------------------------------------------------ deployment

    function test_ConstructorRejectsBadParameters() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.FeeTooHigh.selector, 10_001));
        new LicenseRegistry(10_001, treasury, THAW);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroTreasury.selector));
        new LicenseRegistry(FEE_BPS, address(0), THAW);
        uint256 max = 3650 days;
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ThawTooLong.selector, max + 1, max));
        new LicenseRegistry(FEE_BPS, treasury, uint64(max + 1));
    }

    function test_ConstructorStoresParameters() public view {
        assertEq(reg.feeBps(), FEE_BPS, "feeBps");
        assertEq(reg.treasury(), treasury, "treasury");
        assertEq(reg.thawSeconds(), THAW, "thaw");
        assertTrue(reg.deploymentSalt() != bytes32(0), "salt set");
    }

    /// A registry redeployed at the same address on a fresh chain (state reverted, later clock)
    /// gets another salt, hence another domain separator.
    function test_SaltDiffersPerDeploymentEvenAtTheSameAddress() public {
        uint256 snap = vm.snapshotState();
        LicenseRegistry first = new LicenseRegistry(FEE_BPS, treasury, THAW);
        bytes32 salt1 = first.deploymentSalt();
        bytes32 ds1 = first.domainSeparator();
        vm.revertToState(snap);
        vm.warp(_now() + 12);
        LicenseRegistry second = new LicenseRegistry(FEE_BPS, treasury, THAW);
        assertEq(address(second), address(first), "same address");
        assertTrue(second.deploymentSalt() != salt1, "another salt");
        assertTrue(second.domainSeparator() != ds1, "another domain");
        // and two deployments in one block differ by address
        LicenseRegistry third = new LicenseRegistry(FEE_BPS, treasury, THAW);
        assertTrue(third.deploymentSalt() != second.deploymentSalt(), "per address");
    }

    // ------------------------------------------------------------ products

    function test_ProductIdIsKeccakOfAbiEncodedVendorAndName() public view {
        assertEq(pid, keccak256(abi.encode(vendor, "algo")), "productId");
        assertEq(reg.productIdOf(vendor, "algo"), pid, "productIdOf");
        (address v, uint88 price, bool active) = reg.products(pid);
        assertEq(v, vendor, "vendor");
        assertEq(price, PRICE, "price");
        assertTrue(active, "active");
    }

    function test_RegisterRejectsDuplicateEmptyAndHugePrice() public {
        vm.prank(vendor);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ProductExists.selector, pid));
        reg.registerProduct("algo", 1);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.EmptyName.selector));
        reg.registerProduct("", 1);
        uint256 max = type(uint88).max;
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.PriceTooHigh.selector, max + 1, max));
        reg.registerProduct("x", max + 1);
        // the same name under another vendor is another product
        vm.prank(address(0xBEEF));
        bytes32 other = reg.registerProduct("algo", 1);
        assertTrue(other != pid, "distinct product ids");
    }

    function test_VendorChangesPriceAndActiveFlag() public {
        vm.prank(vendor);
        reg.setPrice(pid, 7);
        vm.prank(vendor);
        reg.setActive(pid, false);
        (, uint88 price, bool active) = reg.products(pid);
        assertEq(price, 7, "price");
        assertTrue(!active, "inactive");
        assertEq(_reason(), uint8(LicenseRegistry.Reason.ProductInactive), "reason");
    }

    function testFuzz_OnlyVendorChangesProduct(address caller) public {
        vm.assume(caller != vendor);
        bytes memory notVendor = abi.encodeWithSelector(LicenseRegistry.NotVendor.selector, pid, caller, vendor);
        vm.startPrank(caller);
        vm.expectRevert(notVendor);
        reg.setPrice(pid, 1);
        vm.expectRevert(notVendor);
        reg.setActive(pid, false);
        vm.expectRevert(notVendor);
        reg.publishRelease(pid, keccak256("other build"));
        vm.expectRevert(notVendor);
        reg.revokeRelease(pid, CODE);
        vm.expectRevert(notVendor);
        reg.revokeCustomer(pid, customer);
        vm.expectRevert(notVendor);
        reg.reinstateCustomer(pid, customer);
        vm.stopPrank();
        (address v, uint88 price, bool active) = reg.products(pid);
        assertEq(v, vendor, "vendor unchanged");
        assertEq(price, PRICE, "price unchanged");
        assertTrue(active, "still active");
        (bool published, bool revoked) = reg.releaseOf(pid, CODE);
        assertTrue(published && !revoked, "release not revoked");
        (published,) = reg.releaseOf(pid, keccak256("other build"));
        assertTrue(!published, "nothing published");
    }

    function test_UnknownProductIsRejected() public {
        bytes32 nope = keccak256("nope");
        bytes memory err = abi.encodeWithSelector(LicenseRegistry.UnknownProduct.selector, nope);
        vm.expectRevert(err);
        reg.setPrice(nope, 1);
        vm.expectRevert(err);
        reg.deposit{value: 1}(nope, address(0));
        vm.expectRevert(err);
        reg.authorizeSigner(nope, signer);
        vm.expectRevert(err);
        reg.publishRelease(nope, CODE);
        vm.expectRevert(err);
        reg.revokeRelease(nope, CODE);
        assertEq(
            uint8(reg.licenseStatus(nope, customer, CODE).reason),
            uint8(LicenseRegistry.Reason.UnknownProduct),
            "reason"
        );
    }

    // ------------------------------------------------------------ releases

    function test_ReleaseRules() public {
        vm.startPrank(vendor);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroCodeHash.selector));
        reg.publishRelease(pid, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReleaseExists.selector, pid, CODE));
        reg.publishRelease(pid, CODE);
        // releases are keyed by (product, code hash): another product may publish the same build
        bytes32 other = reg.registerProduct("other", 1);
        reg.publishRelease(other, CODE);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.UnknownRelease.selector, pid, keccak256("x")));
        reg.revokeRelease(pid, keccak256("x"));
        reg.revokeRelease(pid, CODE);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReleaseAlreadyRevoked.selector, pid, CODE));
        reg.revokeRelease(pid, CODE);
        // a pulled build stays pulled
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReleaseExists.selector, pid, CODE));
        reg.publishRelease(pid, CODE);
        vm.stopPrank();
        assertEq(_reason(), uint8(LicenseRegistry.Reason.ReleaseRevoked), "revoked release");
        (bool published, bool revoked) = reg.releaseOf(pid, CODE);
        assertTrue(published && revoked, "published, revoked");
        (published, revoked) = reg.releaseOf(other, CODE);
        assertTrue(published && !revoked, "the other product's release is untouched");
    }

    /// Attack (b): a stranger publishes the vendor's (not yet published) code hash under a product of
    /// its own. It neither blocks the vendor's publication nor licenses anything for the vendor's product.
    function test_Attack_StrangerPublishingTheVendorsCodeHashDoesNotBlockTheVendor() public {
        bytes32 build = keccak256("vendor's next build");
        address stranger = address(0x5778);
        vm.startPrank(stranger);
        bytes32 squat = reg.registerProduct("squat", 1);
        reg.publishRelease(squat, build);
        // the stranger cannot publish into the vendor's product
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.NotVendor.selector, pid, stranger, vendor));
        reg.publishRelease(pid, build);
        vm.stopPrank();
        assertEq(
            uint8(reg.licenseStatus(pid, customer, build).reason),
            uint8(LicenseRegistry.Reason.UnknownRelease),
            "the squatted hash licenses nothing for the vendor's product"
        );

        vm.prank(vendor);
        reg.publishRelease(pid, build);
        LicenseRegistry.LicenseStatus memory st = reg.licenseStatus(pid, customer, build);
        assertEq(uint8(st.reason), uint8(LicenseRegistry.Reason.Ok), "vendor's release is Ok");
        assertTrue(st.active, "active");

        // the stranger revoking its own copy does not touch the vendor's
        vm.prank(stranger);
        reg.revokeRelease(squat, build);
        assertEq(uint8(reg.licenseStatus(pid, customer, build).reason), 0, "still Ok");
    }

    // ------------------------------------------------------------ status reasons

    function test_StatusOkCarriesAccountFigures() public {
        _settle(SIGNER_PK, 25);
        LicenseRegistry.LicenseStatus memory st = _status();
        assertTrue(st.active, "active");
        assertEq(uint8(st.reason), 0, "Ok");
        assertEq(st.vendor, vendor, "vendor");
        assertEq(st.price, PRICE, "price");
        assertEq(st.balance, 1 ether - 25 * PRICE, "balance");
        assertEq(st.available, 1 ether - 25 * PRICE, "available");
        assertEq(st.boughtUnits, 25, "bought units");
        assertEq(st.blockNumber, block.number, "block number");
        assertEq(st.blockTimestamp, _now(), "block timestamp");
    }

    function test_StatusReasons() public {
        assertEq(uint8(reg.licenseStatus(pid, customer, keccak256("unknown")).reason), 3, "UnknownRelease");
        vm.prank(vendor);
        bytes32 other = reg.registerProduct("other", 1);
        vm.prank(vendor);
        reg.publishRelease(other, keccak256("other code"));
        // a release of another product is simply not a release of this one
        assertEq(uint8(reg.licenseStatus(pid, customer, keccak256("other code")).reason), 3, "UnknownRelease");
        // zero code hash skips release checks
        assertEq(uint8(reg.licenseStatus(pid, customer, bytes32(0)).reason), 0, "account-only status");
        // no deposit at all
        assertEq(uint8(reg.licenseStatus(pid, address(0x1234), CODE).reason), 7, "NoBalance");
        vm.prank(vendor);
        reg.revokeCustomer(pid, customer);
        assertEq(_reason(), 5, "CustomerRevoked");
        assertTrue(!_status().active, "inactive");
        vm.prank(vendor);
        reg.reinstateCustomer(pid, customer);
        assertEq(_reason(), 0, "reinstated");
    }

    /// The funding reasons come last: a lapsed license (revoked, inactive, ...) wins over them.
    function test_FundingReasonsComeAfterEveryLicenseCheck() public {
        assertEq(uint8(LicenseRegistry.Reason.WithdrawalPending), 6, "WithdrawalPending");
        assertEq(uint8(LicenseRegistry.Reason.NoBalance), 7, "NoBalance");
        vm.prank(customer);
        reg.requestWithdrawal(pid, 1 ether);
        assertEq(_reason(), uint8(LicenseRegistry.Reason.WithdrawalPending), "funding");
        vm.prank(vendor);
        reg.revokeCustomer(pid, customer);
        assertEq(_reason(), uint8(LicenseRegistry.Reason.CustomerRevoked), "lapse wins");
    }

    function test_RevokeReinstateErrors() public {
        vm.startPrank(vendor);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.CustomerNotRevoked.selector, pid, customer));
        reg.reinstateCustomer(pid, customer);
        reg.revokeCustomer(pid, customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.CustomerAlreadyRevoked.selector, pid, customer));
        reg.revokeCustomer(pid, customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroAddress.selector));
        reg.revokeCustomer(pid, address(0));
        vm.stopPrank();
    }

    function test_FreeProductNeedsNoBalance() public {
        vm.prank(vendor);
        bytes32 free = reg.registerProduct("free", 0);
        assertEq(uint8(reg.licenseStatus(free, address(0x1234), bytes32(0)).reason), 0, "free is Ok");
        vm.prank(customer);
        reg.authorizeSigner(free, signer);
        LicenseRegistry.Usage memory u = _usageFor(free, customer, BUYER, 1000, 0, _now() + VALIDITY);
        (uint64 units, uint256 amount) = reg.settle(u, _sign(reg, SIGNER_PK, u));
        assertEq(units, 1000, "units recorded");
        assertEq(amount, 0, "free");
        assertEq(reg.licenseStatus(free, customer, bytes32(0)).boughtUnits, 1000, "bought");
    }

    /// The account total is informational and saturates instead of reverting a purchase.
    function test_AccountBoughtUnitsSaturates() public {
        vm.prank(vendor);
        bytes32 free = reg.registerProduct("free", 0);
        vm.prank(customer);
        reg.authorizeSigner(free, signer);
        uint64 max = type(uint64).max;
        LicenseRegistry.Usage memory a = _usageFor(free, customer, BUYER, max, 0, _now() + VALIDITY);
        reg.settle(a, _sign(reg, SIGNER_PK, a));
        LicenseRegistry.Usage memory b = _usageFor(free, customer, BUYER2, 5, 0, _now() + VALIDITY);
        (uint64 units,) = reg.settle(b, _sign(reg, SIGNER_PK, b));
        assertEq(units, 5, "second buyer still buys");
        assertEq(reg.licenseStatus(free, customer, bytes32(0)).boughtUnits, max, "saturated");
    }

    // ------------------------------------------------------------ escrow

    function test_DepositForSelfAndForOthers() public {
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroDeposit.selector));
        reg.deposit{value: 0}(pid, customer);
        address payer = address(0x9A7E);
        vm.deal(payer, 1 ether);
        vm.expectEmit(true, true, true, true);
        emit Deposited(pid, customer, payer, 0.5 ether, 1.5 ether);
        vm.prank(payer);
        reg.deposit{value: 0.5 ether}(pid, customer);
        assertEq(_status().balance, 1.5 ether, "balance");
        assertEq(reg.licenseStatus(pid, payer, CODE).balance, 0, "payer has no escrow");
    }

    function test_DepositOverflowIsRejected() public {
        uint256 big = uint256(type(uint96).max);
        vm.deal(customer, big + 1 ether);
        vm.prank(customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.BalanceOverflow.selector, 1 ether, big));
        reg.deposit{value: big}(pid, address(0));
    }

    function test_WithdrawalWaitsForTheThaw() public {
        vm.startPrank(customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroWithdrawal.selector));
        reg.requestWithdrawal(pid, 0);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.WithdrawalExceedsBalance.selector, 2 ether, 1 ether));
        reg.requestWithdrawal(pid, 2 ether);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.NoWithdrawalPending.selector, pid, customer));
        reg.completeWithdrawal(pid);

        uint256 t0 = vm.getBlockTimestamp(); // not block.timestamp: via-IR re-reads it after vm.warp
        reg.requestWithdrawal(pid, 0.4 ether);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ThawNotOver.selector, uint64(t0 + THAW), uint64(t0)));
        reg.completeWithdrawal(pid);
        vm.warp(t0 + THAW - 1);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseRegistry.ThawNotOver.selector, uint64(t0 + THAW), uint64(t0 + THAW - 1))
        );
        reg.completeWithdrawal(pid);
        vm.stopPrank();

        // partial withdrawal pending: still licensed while the rest covers a unit
        LicenseRegistry.LicenseStatus memory st = _status();
        assertEq(st.thawing, 0.4 ether, "thawing");
        assertEq(st.available, 0.6 ether, "available");
        assertTrue(st.active, "still active");

        vm.warp(t0 + THAW);
        uint256 before = customer.balance;
        vm.prank(customer);
        uint256 paid = reg.completeWithdrawal(pid);
        assertEq(paid, 0.4 ether, "paid");
        assertEq(customer.balance - before, 0.4 ether, "received");
        assertEq(_status().balance, 0.6 ether, "balance after");
        assertEq(_status().thawing, 0, "no longer thawing");
    }

    function test_FullWithdrawalPendingMakesLicenseInactive() public {
        vm.prank(customer);
        reg.requestWithdrawal(pid, 1 ether);
        assertEq(_reason(), uint8(LicenseRegistry.Reason.WithdrawalPending), "WithdrawalPending");
        vm.prank(customer);
        reg.cancelWithdrawal(pid);
        assertEq(_reason(), 0, "Ok after cancel");
        vm.prank(customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.NoWithdrawalPending.selector, pid, customer));
        reg.cancelWithdrawal(pid);
    }

    function test_RerequestRestartsTheThaw() public {
        uint256 t0 = vm.getBlockTimestamp(); // not block.timestamp: via-IR re-reads it after vm.warp
        vm.prank(customer);
        reg.requestWithdrawal(pid, 0.1 ether);
        vm.warp(t0 + THAW - 10);
        vm.prank(customer);
        reg.requestWithdrawal(pid, 0.2 ether);
        vm.warp(t0 + THAW);
        vm.prank(customer);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseRegistry.ThawNotOver.selector, uint64(t0 + 2 * THAW - 10), uint64(t0 + THAW))
        );
        reg.completeWithdrawal(pid);
    }

    function test_PurchaseDuringThawDrawsOnTheThawingAmount() public {
        vm.prank(customer);
        reg.requestWithdrawal(pid, 1 ether);
        // the whole balance is thawing: the runtime itself would not buy (available = 0), but the
        // contract still sells from the balance until the withdrawal completes
        _settle(SIGNER_PK, 1e8); // 1e8 units * 1 gwei = 0.1 ether
        vm.warp(_now() + THAW);
        vm.prank(customer);
        uint256 paid = reg.completeWithdrawal(pid);
        assertEq(paid, 0.9 ether, "withdrawal capped by the balance left after the purchase");
        assertEq(reg.revenueOf(vendor) + reg.feeOwedBy(vendor), 0.1 ether, "revenue");
    }

    function testFuzz_ThawCannotBeBypassed(uint64 wait, uint96 amount) public {
        amount = uint96(_bound(amount, 1, 1 ether));
        wait = uint64(_bound(wait, 0, THAW - 1));
        uint256 t0 = vm.getBlockTimestamp(); // not block.timestamp: via-IR re-reads it after vm.warp
        vm.prank(customer);
        reg.requestWithdrawal(pid, amount);
        vm.warp(t0 + wait);
        vm.prank(customer);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseRegistry.ThawNotOver.selector, uint64(t0 + THAW), uint64(t0 + wait))
        );
        reg.completeWithdrawal(pid);
        // another account cannot complete it either: it has nothing pending
        vm.warp(t0 + THAW);
        vm.prank(address(0xD00D));
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.NoWithdrawalPending.selector, pid, address(0xD00D)));
        reg.completeWithdrawal(pid);
        assertEq(_status().balance, 1 ether, "escrow untouched");
    }

    // ------------------------------------------------------------ signers

    function test_SignerAuthorizationErrors() public {
        vm.startPrank(customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignerAlreadyAuthorized.selector, pid, customer, signer));
        reg.authorizeSigner(pid, signer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroAddress.selector));
        reg.authorizeSigner(pid, address(0));
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, signer2));
        reg.deauthorizeSigner(pid, signer2);
        vm.stopPrank();
        LicenseRegistry.SignerStatus memory s = reg.signerStatus(pid, customer, signer, BUYER);
        assertTrue(s.authorized, "authorized");
        assertEq(s.boughtUnits, 0, "nothing bought");
        // authorization is per customer
        assertTrue(!reg.signerStatus(pid, address(0x0DD), signer, BUYER).authorized, "not for another customer");
    }

    /// Attack (g): a deauthorized signer's receipts stop at once, even ones signed before.
    function test_Attack_DeauthorizedSignerIsRefusedImmediately() public {
        _settle(SIGNER_PK, 10);
        LicenseRegistry.Usage memory u = _usage(pid, customer, 20);
        bytes memory sig = _sign(reg, SIGNER_PK, u); // signed while authorized
        vm.expectEmit(true, true, true, true);
        emit SignerDeauthorized(pid, customer, signer);
        vm.prank(customer);
        reg.deauthorizeSigner(pid, signer);
        assertTrue(!reg.signerStatus(pid, customer, signer, BUYER).authorized, "deauthorized now");
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, signer));
        reg.settle(u, sig);
        assertEq(_status().balance, 1 ether - 10 * PRICE, "nothing more charged");
        assertEq(_status().boughtUnits, 10, "nothing more bought");
        // deauthorizing again is an error
        vm.prank(customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, signer));
        reg.deauthorizeSigner(pid, signer);
    }

    function test_ReauthorizedSignerKeepsItsCounters() public {
        _settle(SIGNER_PK, 50);
        _settleFor(SIGNER_PK, BUYER2, 7);
        vm.prank(customer);
        reg.deauthorizeSigner(pid, signer);
        vm.prank(customer);
        reg.authorizeSigner(pid, signer);
        (uint64 units, uint256 amount) = _settle(SIGNER_PK, 50);
        assertEq(units, 0, "old receipt does not charge again");
        assertEq(amount, 0, "no wei");
        assertEq(_bought(SIGNER_PK, BUYER), 50, "counter kept");
        assertEq(_bought(SIGNER_PK, BUYER2), 7, "second buyer's counter kept");
        (units,) = _settle(SIGNER_PK, 60);
        assertEq(units, 10, "buys on from the kept counter");
    }

    // ------------------------------------------------------------ purchases

    function test_SettleBuysDeltaAndAccruesTheFee() public {
        vm.expectEmit(true, true, true, true);
        emit Settled(pid, customer, signer, BUYER, 100, 100 * PRICE, 100, PRICE);
        (uint64 units, uint256 amount) = _settle(SIGNER_PK, 100);
        assertEq(units, 100, "units");
        assertEq(amount, 100 * PRICE, "amount");
        (units, amount) = _settle(SIGNER_PK, 250);
        assertEq(units, 150, "delta units");
        assertEq(amount, 150 * PRICE, "delta amount");
        assertEq(reg.revenueOf(vendor), 250 * PRICE * 7000 / 10_000, "vendor 70%");
        assertEq(reg.feeOwedBy(vendor), 250 * PRICE * 3000 / 10_000, "fee 30%, held for the treasury");
        assertEq(reg.revenueOf(treasury), 0, "not collected yet");
        LicenseRegistry.LicenseStatus memory st = _status();
        assertEq(st.balance, 1 ether - 250 * PRICE, "balance");
        assertEq(st.boughtUnits, 250, "bought units");
        assertEq(_bought(SIGNER_PK, BUYER), 250, "buyer counter");
    }

    function test_AnyoneMaySubmitAReceipt() public {
        LicenseRegistry.Usage memory u = _usage(pid, customer, 5);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        vm.prank(address(0x5EB));
        (uint64 units,) = reg.settle(u, sig);
        assertEq(units, 5, "relayed");
    }

    function test_StaleAndReplayedReceiptsAreIgnored() public {
        LicenseRegistry.Usage memory u = _usage(pid, customer, 100);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        reg.settle(u, sig);
        uint256 bal = _status().balance;
        vm.expectEmit(true, true, true, true);
        emit ReceiptIgnored(pid, customer, signer, BUYER, 100, 100);
        (uint64 units, uint256 amount) = reg.settle(u, sig);
        assertEq(units + amount, 0, "replay charges nothing");
        (units, amount) = _settle(SIGNER_PK, 40);
        assertEq(units + amount, 0, "stale charges nothing");
        assertEq(_status().balance, bal, "balance unchanged");
        assertEq(_bought(SIGNER_PK, BUYER), 100, "counter unchanged");
    }

    /// Attack (f): two state directories (buyers) behind one signer key never share a purchase.
    function test_Attack_TwoBuyersUnderOneSignerKeepSeparateCounters() public {
        (uint64 units,) = _settleFor(SIGNER_PK, BUYER, 100);
        assertEq(units, 100, "buyer A");
        // buyer B's first receipt is below A's counter: with a shared counter it would be ignored
        (units,) = _settleFor(SIGNER_PK, BUYER2, 30);
        assertEq(units, 30, "buyer B counts from zero");
        (units,) = _settleFor(SIGNER_PK, BUYER2, 100);
        assertEq(units, 70, "buyer B buys up to its own cumulative");
        (units,) = _settleFor(SIGNER_PK, BUYER, 100);
        assertEq(units, 0, "buyer A's replay still ignored");
        assertEq(_bought(SIGNER_PK, BUYER), 100, "A");
        assertEq(_bought(SIGNER_PK, BUYER2), 100, "B");
        assertEq(_status().boughtUnits, 200, "account total over buyers");
        assertEq(_status().balance, 1 ether - 200 * PRICE, "each unit paid once per buyer");
    }

    function test_SignersHaveIndependentCounters() public {
        vm.prank(customer);
        reg.authorizeSigner(pid, signer2);
        _settle(SIGNER_PK, 100);
        (uint64 units,) = _settle(SIGNER2_PK, 30);
        assertEq(units, 30, "second signer counts from zero, even for the same buyer id");
        assertEq(_status().boughtUnits, 130, "total over signers");
        assertEq(_bought(SIGNER_PK, BUYER), 100, "signer 1");
        assertEq(_bought(SIGNER2_PK, BUYER), 30, "signer 2");
    }

    function test_UnauthorizedSignerCannotCharge() public {
        LicenseRegistry.Usage memory u = _usage(pid, customer, 100);
        bytes memory sig = _sign(reg, STRANGER_PK, u);
        vm.expectRevert(
            abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, vm.addr(STRANGER_PK))
        );
        reg.settle(u, sig);
        // a signer authorized by another customer cannot charge this one
        address other = address(0x0DD);
        vm.prank(other);
        reg.authorizeSigner(pid, vm.addr(STRANGER_PK));
        vm.expectRevert(
            abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, vm.addr(STRANGER_PK))
        );
        reg.settle(u, sig);
        assertEq(_status().balance, 1 ether, "untouched");
    }

    function test_ReceiptForAnotherChainDoesNotCharge() public {
        LicenseRegistry.Usage memory u = _usage(pid, customer, 100);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        bytes32 ds = reg.domainSeparator();
        vm.chainId(block.chainid + 1);
        assertTrue(reg.domainSeparator() != ds, "domain follows the chain id");
        vm.expectRevert(); // recovers some other address, which is not authorized
        reg.settle(u, sig);
        assertEq(_status().balance, 1 ether, "untouched");
    }

    function test_ReceiptForAnotherContractDoesNotCharge() public {
        LicenseRegistry reg2 = new LicenseRegistry(FEE_BPS, treasury, THAW);
        vm.prank(vendor);
        reg2.registerProduct("algo", PRICE);
        vm.prank(customer);
        reg2.deposit{value: 1 ether}(pid, address(0));
        vm.prank(customer);
        reg2.authorizeSigner(pid, signer);
        LicenseRegistry.Usage memory u = _usage(pid, customer, 100);
        bytes memory sigForReg = _sign(reg, SIGNER_PK, u);
        vm.expectRevert();
        reg2.settle(u, sigForReg);
        assertEq(reg2.licenseStatus(pid, customer, bytes32(0)).balance, 1 ether, "untouched");
    }

    /// Attack (d): a receipt signed for one deployment does not settle on a registry redeployed at
    /// the same address with identical state (a fresh dev chain): the salt differs.
    function test_Attack_ReceiptForAnotherDeploymentAtTheSameAddressDoesNotCharge() public {
        uint256 snap = vm.snapshotState();
        LicenseRegistry first = _deployFunded();
        LicenseRegistry.Usage memory u = _usage(pid, customer, 100);
        bytes memory sig = _sign(first, SIGNER_PK, u);
        vm.revertToState(snap);
        vm.warp(_now() + 12);
        LicenseRegistry second = _deployFunded();
        assertEq(address(second), address(first), "same address");
        address recovered = second.recoverSigner(second.hashUsage(u), sig);
        assertTrue(recovered != signer, "recovers an unrelated address");
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, recovered));
        second.settle(u, sig);
        assertEq(second.licenseStatus(pid, customer, bytes32(0)).balance, 1 ether, "untouched");
        // the same receipt signed for this deployment settles
        (uint64 units,) = second.settle(u, _sign(second, SIGNER_PK, u));
        assertEq(units, 100, "own receipt settles");
    }

    function _deployFunded() internal returns (LicenseRegistry r) {
        r = new LicenseRegistry(FEE_BPS, treasury, THAW);
        vm.prank(vendor);
        r.registerProduct("algo", PRICE);
        vm.prank(customer);
        r.deposit{value: 1 ether}(pid, address(0));
        vm.prank(customer);
        r.authorizeSigner(pid, signer);
    }

    /// Attack (a): the vendor front-runs a pending purchase with a price rise. The purchase reverts
    /// and nothing is charged; after a price cut the same receipt buys at the lower price.
    function test_Attack_VendorFrontRunningWithAHigherPriceGetsNothing() public {
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, BUYER, 1000, uint128(PRICE), _now() + VALIDITY);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        // the vendor sees the purchase in the mempool and raises the price first
        vm.prank(vendor);
        reg.setPrice(pid, PRICE * 10);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.PriceAboveCap.selector, PRICE * 10, PRICE));
        reg.settle(u, sig);
        assertEq(_status().balance, 1 ether, "nothing charged");
        assertEq(_bought(SIGNER_PK, BUYER), 0, "nothing bought");
        assertEq(reg.revenueOf(vendor) + reg.feeOwedBy(vendor), 0, "no revenue");

        // a price cut: the same receipt now buys at the current, lower price
        vm.prank(vendor);
        reg.setPrice(pid, PRICE / 2);
        vm.expectEmit(true, true, true, true);
        emit Settled(pid, customer, signer, BUYER, 1000, 1000 * (PRICE / 2), 1000, PRICE / 2);
        (uint64 units, uint256 amount) = reg.settle(u, sig);
        assertEq(units, 1000, "bought");
        assertEq(amount, 1000 * (PRICE / 2), "charged at the lower price");
        assertEq(_status().balance, 1 ether - 1000 * (PRICE / 2), "balance");
    }

    function testFuzz_PriceCapIsEnforcedAndTheCurrentPriceCharged(uint88 price, uint128 cap, uint32 n) public {
        price = uint88(_bound(price, 0, 1e15));
        cap = uint128(_bound(cap, 0, 2e15));
        uint64 units = uint64(_bound(n, 1, 1000));
        vm.prank(vendor);
        reg.setPrice(pid, price);
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, BUYER, units, cap, _now() + VALIDITY);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        if (price > cap) {
            vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.PriceAboveCap.selector, price, cap));
            reg.settle(u, sig);
            assertEq(_status().balance, 1 ether, "nothing charged");
        } else {
            (uint64 got, uint256 amount) = reg.settle(u, sig);
            assertEq(got, units, "units");
            assertEq(amount, uint256(units) * price, "current price");
        }
    }

    /// Attack (c): a purchase the escrow cannot pay reverts whole; it never half-fills.
    function test_Attack_PurchaseTheEscrowCannotPayRevertsAndChangesNothing() public {
        vm.prank(vendor);
        bytes32 p2 = reg.registerProduct("pricey", 1 ether);
        vm.startPrank(customer);
        reg.deposit{value: 2.5 ether}(p2, address(0));
        reg.authorizeSigner(p2, signer);
        vm.stopPrank();

        LicenseRegistry.Usage memory five = _usageFor(p2, customer, BUYER, 5, 1 ether, _now() + VALIDITY);
        bytes memory sig5 = _sign(reg, SIGNER_PK, five);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InsufficientEscrow.selector, 5 ether, 2.5 ether));
        reg.settle(five, sig5);
        LicenseRegistry.LicenseStatus memory st = reg.licenseStatus(p2, customer, bytes32(0));
        assertEq(st.balance, 2.5 ether, "balance untouched");
        assertEq(st.boughtUnits, 0, "nothing bought");
        assertEq(reg.signerStatus(p2, customer, signer, BUYER).boughtUnits, 0, "counter untouched");
        assertEq(reg.revenueOf(vendor) + reg.feeOwedBy(vendor), 0, "no revenue");

        // what the escrow can pay goes through
        LicenseRegistry.Usage memory two = _usageFor(p2, customer, BUYER, 2, 1 ether, _now() + VALIDITY);
        (uint64 units, uint256 amount) = reg.settle(two, _sign(reg, SIGNER_PK, two));
        assertEq(units, 2, "two units");
        assertEq(amount, 2 ether, "two ether");
        // the 5-unit receipt now needs 3 ether out of 0.5: still all or nothing
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InsufficientEscrow.selector, 3 ether, 0.5 ether));
        reg.settle(five, sig5);
        // after a top-up the same receipt buys exactly the 3 missing units, once
        vm.prank(customer);
        reg.deposit{value: 10 ether}(p2, address(0));
        (units, amount) = reg.settle(five, sig5);
        assertEq(units, 3, "rest");
        assertEq(amount, 3 ether, "rest wei");
        (units, amount) = reg.settle(five, sig5);
        assertEq(units + amount, 0, "then idempotent");
        st = reg.licenseStatus(p2, customer, bytes32(0));
        assertEq(st.boughtUnits, 5, "five bought");
        assertEq(st.balance, 7.5 ether, "balance");
    }

    function testFuzz_PurchaseIsAllOrNothing(uint96 balance, uint64 units, uint88 price) public {
        price = uint88(_bound(price, 1, 1e18));
        units = uint64(_bound(units, 1, 1e9));
        balance = uint96(_bound(balance, 1, 50 ether));
        vm.prank(vendor);
        bytes32 p2 = reg.registerProduct("fuzz", price);
        vm.deal(customer, balance);
        vm.startPrank(customer);
        reg.deposit{value: balance}(p2, address(0));
        reg.authorizeSigner(p2, signer);
        vm.stopPrank();
        LicenseRegistry.Usage memory u = _usageFor(p2, customer, BUYER, units, price, _now() + VALIDITY);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        uint256 cost = uint256(units) * price;
        if (cost > balance) {
            vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InsufficientEscrow.selector, cost, balance));
            reg.settle(u, sig);
            assertEq(reg.licenseStatus(p2, customer, bytes32(0)).balance, balance, "untouched");
            assertEq(reg.signerStatus(p2, customer, signer, BUYER).boughtUnits, 0, "nothing bought");
        } else {
            (uint64 got, uint256 amount) = reg.settle(u, sig);
            assertEq(got, units, "every unit");
            assertEq(amount, cost, "exact cost");
            assertEq(reg.licenseStatus(p2, customer, bytes32(0)).balance, balance - cost, "debited");
        }
    }

    /// Attack (e): an expired receipt does not settle, e.g. an old receipt replayed after a top-up.
    function test_Attack_ExpiredReceiptReverts() public {
        uint64 t0 = _now();
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, BUYER, 100, ANY_PRICE, t0 + 60);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        vm.warp(t0 + 61);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReceiptExpired.selector, t0 + 60, t0 + 61));
        reg.settle(u, sig);
        assertEq(_status().balance, 1 ether, "untouched");
        assertEq(_bought(SIGNER_PK, BUYER), 0, "nothing bought");
        // still valid at the second it expires
        vm.warp(t0 + 60);
        (uint64 units,) = reg.settle(u, sig);
        assertEq(units, 100, "valid through expiresAt");
    }

    function testFuzz_NoReceiptChargesTwice(uint64[8] memory cums, uint8 order) public {
        uint64 max;
        uint256 charged;
        uint256 chargedWei;
        for (uint256 i = 0; i < 8; i++) {
            uint64 c = uint64(_bound(cums[(i + order) % 8], 1, 1e8));
            (uint64 units, uint256 amount) = _settle(SIGNER_PK, c);
            // replay immediately: never charges
            (uint64 u2, uint256 a2) = _settle(SIGNER_PK, c);
            assertEq(u2 + a2, 0, "replay charged");
            charged += units;
            chargedWei += amount;
            if (c > max) max = c;
        }
        assertEq(charged, max, "units charged == highest cumulative");
        assertEq(chargedWei, uint256(max) * PRICE, "wei charged");
        assertEq(_status().balance + chargedWei, 1 ether, "escrow debited exactly");
    }

    function testFuzz_FeeSplitIsExact(uint16 fee, uint64 units, uint88 price) public {
        fee = uint16(_bound(fee, 0, 10_000));
        units = uint64(_bound(units, 1, 1e12));
        price = uint88(_bound(price, 0, 1e15));
        LicenseRegistry r = new LicenseRegistry(fee, treasury, THAW);
        vm.prank(vendor);
        bytes32 p = r.registerProduct("algo", price);
        uint256 cost = uint256(units) * price;
        vm.deal(customer, cost + 1);
        vm.startPrank(customer);
        r.deposit{value: cost + 1}(p, address(0));
        r.authorizeSigner(p, signer);
        vm.stopPrank();
        LicenseRegistry.Usage memory u = _usageFor(p, customer, BUYER, units, price, _now() + VALIDITY);
        (, uint256 amount) = r.settle(u, _sign(r, SIGNER_PK, u));
        assertEq(amount, cost, "charged");
        assertEq(r.feeOwedBy(vendor), cost * fee / 10_000, "fee");
        assertEq(r.revenueOf(vendor) + r.feeOwedBy(vendor), cost, "nothing lost");
        address[] memory vs = new address[](1);
        vs[0] = vendor;
        assertEq(r.collectFees(vs), cost * fee / 10_000, "collected");
        assertEq(r.revenueOf(treasury), cost * fee / 10_000, "treasury");
        assertEq(r.feeOwedBy(vendor), 0, "handed over");
    }

    // ------------------------------------------------------------ EIP-712 and signatures

    function test_TypehashAndDomainAreComputedIndependently() public view {
        assertEq(
            reg.USAGE_TYPEHASH(),
            keccak256(
                "Usage(bytes32 productId,address customer,bytes32 buyer,uint64 cumulativeUnits,uint128 maxPrice,uint64 expiresAt)"
            ),
            "typehash"
        );
        bytes32 ds = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)"
                ),
                keccak256("Sealbox LicenseRegistry"),
                keccak256("2"),
                block.chainid,
                address(reg),
                reg.deploymentSalt()
            )
        );
        assertEq(reg.domainSeparator(), ds, "domain separator");
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, BUYER, 42, 1000, 1_900_000_000);
        bytes32 sh = keccak256(
            abi.encode(
                reg.USAGE_TYPEHASH(), u.productId, u.customer, u.buyer, u.cumulativeUnits, u.maxPrice, u.expiresAt
            )
        );
        assertEq(reg.hashUsage(u), keccak256(abi.encodePacked("\x19\x01", ds, sh)), "digest");
    }

    function test_DigestMatchesForgeEip712Implementation() public view {
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, BUYER, 42, 1_000_000_000, 1_900_000_000);
        string memory types = string.concat(
            '{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},',
            '{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"},',
            '{"name":"salt","type":"bytes32"}],',
            '"Usage":[{"name":"productId","type":"bytes32"},{"name":"customer","type":"address"},',
            '{"name":"buyer","type":"bytes32"},{"name":"cumulativeUnits","type":"uint64"},',
            '{"name":"maxPrice","type":"uint128"},{"name":"expiresAt","type":"uint64"}]},'
        );
        string memory domain = string.concat(
            '"primaryType":"Usage","domain":{"name":"Sealbox LicenseRegistry","version":"2","chainId":',
            vm.toString(block.chainid),
            ',"verifyingContract":"',
            vm.toString(address(reg)),
            '","salt":"',
            vm.toString(reg.deploymentSalt()),
            '"},'
        );
        string memory message = string.concat(
            '"message":{"productId":"',
            vm.toString(u.productId),
            '","customer":"',
            vm.toString(u.customer),
            '","buyer":"',
            vm.toString(u.buyer),
            '","cumulativeUnits":42,"maxPrice":1000000000,"expiresAt":1900000000}}'
        );
        assertEq(
            reg.hashUsage(u), vm.eip712HashTypedData(string.concat(types, domain, message)), "forge's EIP-712 digest"
        );
    }

    function testFuzz_RecoverReturnsTheSigner(uint256 pk, bytes32 digest) public view {
        pk = _bound(pk, 1, N - 1);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        assertEq(reg.recoverSigner(digest, abi.encodePacked(r, s, v)), vm.addr(pk), "v in {27,28}");
        assertEq(reg.recoverSigner(digest, abi.encodePacked(r, s, v - 27)), vm.addr(pk), "v in {0,1}");
    }

    function testFuzz_HighSIsRejected(uint256 pk, bytes32 digest) public {
        pk = _bound(pk, 1, N - 1);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        // the malleable twin (n - s, flipped v) recovers the same key; it must be refused
        bytes32 highS = bytes32(N - uint256(s));
        uint8 flipped = v == 27 ? 28 : 27;
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignatureSMalleable.selector));
        reg.recoverSigner(digest, abi.encodePacked(r, highS, flipped));
    }

    function test_MalformedSignaturesAreRejected() public {
        bytes32 d = keccak256("d");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(SIGNER_PK, d);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InvalidSignatureLength.selector, 64));
        reg.recoverSigner(d, abi.encodePacked(r, s));
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InvalidSignatureV.selector, 29));
        reg.recoverSigner(d, abi.encodePacked(r, s, uint8(29)));
        // r = 0 makes ecrecover return the zero address
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InvalidSignature.selector));
        reg.recoverSigner(d, abi.encodePacked(bytes32(0), s, v));
        LicenseRegistry.Usage memory u = _usage(pid, customer, 1);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InvalidSignatureLength.selector, 0));
        reg.settle(u, "");
    }

    /// Every signed field is bound: changing any of them recovers an unrelated, unauthorized address.
    function test_TamperedReceiptDoesNotCharge() public {
        LicenseRegistry.Usage memory u = _usageFor(pid, customer, BUYER, 10, uint128(PRICE), _now() + VALIDITY);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        for (uint256 i = 0; i < 4; i++) {
            // a fresh copy (assigning a memory struct would alias it)
            LicenseRegistry.Usage memory t =
                _usageFor(u.productId, u.customer, u.buyer, u.cumulativeUnits, u.maxPrice, u.expiresAt);
            if (i == 0) t.cumulativeUnits = 1_000_000;
            if (i == 1) t.buyer = BUYER2;
            if (i == 2) t.maxPrice = uint128(PRICE) * 100;
            if (i == 3) t.expiresAt = u.expiresAt + 365 days;
            vm.expectRevert(); // recovers an unrelated address
            reg.settle(t, sig);
        }
        assertEq(_status().balance, 1 ether, "untouched");
        (uint64 units,) = reg.settle(u, sig);
        assertEq(units, 10, "the genuine receipt still settles");
    }

    // ------------------------------------------------------------ revenue

    function test_WithdrawPaysRevenueOnce() public {
        _settle(SIGNER_PK, 1000);
        uint256 due = reg.revenueOf(vendor);
        assertEq(due, 700 * PRICE, "vendor due");
        uint256 before = vendor.balance;
        vm.prank(vendor);
        reg.withdraw();
        assertEq(vendor.balance - before, due, "paid");
        vm.prank(vendor);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.NothingToWithdraw.selector, vendor));
        reg.withdraw();
        // the fee waits in the vendor's slot until collected
        vm.prank(treasury);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.NothingToWithdraw.selector, treasury));
        reg.withdraw();
        address[] memory vs = new address[](1);
        vs[0] = vendor;
        reg.collectFees(vs);
        vm.prank(treasury);
        reg.withdraw();
        assertEq(treasury.balance, 300 * PRICE, "treasury paid");
        assertEq(address(reg).balance, 1 ether - 1000 * PRICE, "contract keeps the escrow");
    }

    function test_CollectFeesFromManyVendorsAnyoneMayCall() public {
        address vendor2 = address(0xFEED2);
        vm.prank(vendor2);
        bytes32 p2 = reg.registerProduct("algo2", 2 * PRICE);
        vm.prank(customer);
        reg.deposit{value: 1 ether}(p2, address(0));
        vm.prank(customer);
        reg.authorizeSigner(p2, signer);
        _settle(SIGNER_PK, 1000);
        LicenseRegistry.Usage memory u = _usage(p2, customer, 1000);
        reg.settle(u, _sign(reg, SIGNER_PK, u));
        uint256 fee1 = 1000 * PRICE * 3000 / 10_000;
        uint256 fee2 = 2000 * PRICE * 3000 / 10_000;

        address[] memory vs = new address[](4);
        vs[0] = vendor;
        vs[1] = address(0xABC); // owes nothing: skipped
        vs[2] = vendor2;
        vs[3] = vendor; // listed twice: nothing left the second time
        vm.expectEmit(true, true, true, true);
        emit FeesCollected(vendor, fee1);
        vm.expectEmit(true, true, true, true);
        emit FeesCollected(vendor2, fee2);
        vm.prank(address(0x5EB));
        uint256 moved = reg.collectFees(vs);
        assertEq(moved, fee1 + fee2, "moved");
        assertEq(reg.revenueOf(treasury), fee1 + fee2, "treasury revenue");
        assertEq(reg.feeOwedBy(vendor) + reg.feeOwedBy(vendor2), 0, "nothing owed");
        assertEq(reg.revenueOf(vendor), 1000 * PRICE - fee1, "vendor share untouched");
        assertEq(reg.collectFees(vs), 0, "idempotent");
    }

    function test_ReentrantWithdrawFails() public {
        Reenterer attacker = new Reenterer(reg);
        bytes32 p = attacker.register();
        vm.prank(customer);
        reg.deposit{value: 1 ether}(p, address(0));
        vm.prank(customer);
        reg.authorizeSigner(p, signer);
        LicenseRegistry.Usage memory u = _usage(p, customer, 1e9); // 1 ether
        reg.settle(u, _sign(reg, SIGNER_PK, u));
        uint256 due = reg.revenueOf(address(attacker));
        assertEq(due, 0.7 ether, "due");

        attacker.attackWithdraw();
        assertEq(address(attacker).balance, due, "paid exactly once");
        assertEq(attacker.reentries(), 1, "tried to reenter");
        assertEq(uint32(attacker.lastError()), uint32(LicenseRegistry.Reentrancy.selector), "reentry refused");
        assertEq(reg.revenueOf(address(attacker)), 0, "nothing left");
    }

    function test_ReentrantCompleteWithdrawalFails() public {
        Reenterer attacker = new Reenterer(reg);
        vm.deal(address(attacker), 1 ether);
        attacker.fund(pid, 1 ether);
        attacker.request(pid, 1 ether);
        vm.warp(_now() + THAW);
        attacker.attackComplete(pid);
        assertEq(address(attacker).balance, 1 ether, "paid exactly once");
        assertEq(attacker.reentries(), 1, "tried to reenter");
        assertEq(uint32(attacker.lastError()), uint32(LicenseRegistry.Reentrancy.selector), "reentry refused");
    }

    function test_RejectingRecipientGetsClearError() public {
        Reenterer attacker = new Reenterer(reg);
        bytes32 p = attacker.register();
        vm.prank(customer);
        reg.deposit{value: 1 ether}(p, address(0));
        vm.prank(customer);
        reg.authorizeSigner(p, signer);
        LicenseRegistry.Usage memory u = _usage(p, customer, 1e9);
        reg.settle(u, _sign(reg, SIGNER_PK, u));
        attacker.setRefuse(true);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.TransferFailed.selector, address(attacker), 0.7 ether));
        attacker.attackWithdraw();
        assertEq(reg.revenueOf(address(attacker)), 0.7 ether, "still owed");
    }
}

/// Tries to re-enter the registry from its receive hook and records what happened.
contract Reenterer {
    LicenseRegistry internal immutable reg;
    uint256 public reentries;
    bytes4 public lastError;
    bytes32 internal pidForComplete;
    uint8 internal mode; // 1 = withdraw, 2 = completeWithdrawal
    bool internal refuse;

    constructor(LicenseRegistry r) {
        reg = r;
    }

    function register() external returns (bytes32) {
        return reg.registerProduct("attack", 1 gwei);
    }

    function fund(bytes32 p, uint256 amount) external {
        reg.deposit{value: amount}(p, address(0));
    }

    function request(bytes32 p, uint256 amount) external {
        reg.requestWithdrawal(p, amount);
    }

    function setRefuse(bool r) external {
        refuse = r;
    }

    function attackWithdraw() external {
        mode = 1;
        reg.withdraw();
    }

    function attackComplete(bytes32 p) external {
        mode = 2;
        pidForComplete = p;
        reg.completeWithdrawal(p);
    }

    receive() external payable {
        require(!refuse, "refused");
        if (mode == 0) return;
        uint8 m = mode;
        mode = 0;
        reentries++;
        try this.reenter(m) {}
        catch (bytes memory err) {
            lastError = bytes4(err);
        }
    }

    function reenter(uint8 m) external {
        require(msg.sender == address(this), "self only");
        if (m == 1) reg.withdraw();
        else reg.completeWithdrawal(pidForComplete);
    }
}
