// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {LicenseRegistry} from "../src/LicenseRegistry.sol";
import {Base, Vm} from "./Base.sol";

/// Unit and fuzz tests of LicenseRegistry.
contract LicenseRegistryTest is Base {
    event Settled(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        uint64 units,
        uint256 amount,
        uint64 signerSettled,
        uint64 unpaidUnits
    );
    event ReceiptIgnored(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        uint64 cumulativeUnits,
        uint64 signerSettled
    );
    event Deposited(
        bytes32 indexed productId, address indexed customer, address indexed from, uint256 amount, uint256 balance
    );

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
        reg.revokeRelease(CODE);
        vm.expectRevert(notVendor);
        reg.revokeCustomer(pid, customer);
        vm.expectRevert(notVendor);
        reg.reinstateCustomer(pid, customer);
        vm.stopPrank();
        (address v, uint88 price, bool active) = reg.products(pid);
        assertEq(v, vendor, "vendor unchanged");
        assertEq(price, PRICE, "price unchanged");
        assertTrue(active, "still active");
        (, bool revoked) = reg.releases(CODE);
        assertTrue(!revoked, "release not revoked");
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
        assertEq(uint8(reg.licenseStatus(nope, customer, CODE).reason), uint8(LicenseRegistry.Reason.UnknownProduct), "reason");
    }

    // ------------------------------------------------------------ releases

    function test_ReleaseRules() public {
        vm.startPrank(vendor);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ZeroCodeHash.selector));
        reg.publishRelease(pid, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReleaseExists.selector, CODE, pid));
        reg.publishRelease(pid, CODE);
        bytes32 other = reg.registerProduct("other", 1);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReleaseExists.selector, CODE, pid));
        reg.publishRelease(other, CODE);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.UnknownRelease.selector, keccak256("x")));
        reg.revokeRelease(keccak256("x"));
        reg.revokeRelease(CODE);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ReleaseAlreadyRevoked.selector, CODE));
        reg.revokeRelease(CODE);
        vm.stopPrank();
        assertEq(_reason(), uint8(LicenseRegistry.Reason.ReleaseRevoked), "revoked release");
    }

    // ------------------------------------------------------------ status reasons

    function test_StatusOkCarriesAccountFigures() public view {
        LicenseRegistry.LicenseStatus memory st = _status();
        assertTrue(st.active, "active");
        assertEq(uint8(st.reason), 0, "Ok");
        assertEq(st.vendor, vendor, "vendor");
        assertEq(st.price, PRICE, "price");
        assertEq(st.balance, 1 ether, "balance");
        assertEq(st.available, 1 ether, "available");
        assertEq(st.blockNumber, block.number, "block number");
        assertEq(st.blockTimestamp, block.timestamp, "block timestamp");
    }

    function test_StatusReasons() public {
        assertEq(uint8(reg.licenseStatus(pid, customer, keccak256("unknown")).reason), 3, "UnknownRelease");
        vm.prank(vendor);
        bytes32 other = reg.registerProduct("other", 1);
        vm.prank(vendor);
        reg.publishRelease(other, keccak256("other code"));
        assertEq(uint8(reg.licenseStatus(pid, customer, keccak256("other code")).reason), 4, "ReleaseOfOtherProduct");
        // zero code hash skips release checks
        assertEq(uint8(reg.licenseStatus(pid, customer, bytes32(0)).reason), 0, "account-only status");
        // no deposit at all
        assertEq(uint8(reg.licenseStatus(pid, address(0x1234), CODE).reason), 9, "NoBalance");
        vm.prank(vendor);
        reg.revokeCustomer(pid, customer);
        assertEq(_reason(), 6, "CustomerRevoked");
        assertTrue(!_status().active, "inactive");
        vm.prank(vendor);
        reg.reinstateCustomer(pid, customer);
        assertEq(_reason(), 0, "reinstated");
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
        LicenseRegistry.Usage memory u = _usage(free, customer, 1000);
        (uint64 units, uint256 amount) = reg.settle(u, _sign(reg, SIGNER_PK, u));
        assertEq(units, 1000, "units recorded");
        assertEq(amount, 0, "free");
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

    function test_SettlementDuringThawChargesTheEscrowFirst() public {
        vm.prank(customer);
        reg.requestWithdrawal(pid, 1 ether);
        // usage run before/while thawing is still paid
        _settle(SIGNER_PK, 1e8); // 1e8 units * 1 gwei = 0.1 ether
        vm.warp(block.timestamp + THAW);
        vm.prank(customer);
        uint256 paid = reg.completeWithdrawal(pid);
        assertEq(paid, 0.9 ether, "withdrawal capped by the balance left after settlement");
        assertEq(reg.revenueOf(vendor) + reg.revenueOf(treasury), 0.1 ether, "revenue");
    }

    function testFuzz_ThawCannotBeBypassed(uint64 wait, uint96 amount) public {
        amount = uint96(_bound(amount, 1, 1 ether));
        wait = uint64(_bound(wait, 0, THAW - 1));
        uint256 t0 = vm.getBlockTimestamp(); // not block.timestamp: via-IR re-reads it after vm.warp
        vm.prank(customer);
        reg.requestWithdrawal(pid, amount);
        vm.warp(t0 + wait);
        vm.prank(customer);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.ThawNotOver.selector, uint64(t0 + THAW), uint64(t0 + wait)));
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
        LicenseRegistry.SignerStatus memory s = reg.signerStatus(pid, customer, signer);
        assertTrue(s.authorized, "authorized");
        assertEq(s.validUntil, type(uint64).max, "valid forever");
    }

    function test_DeauthorizedSignerSettlesUntilThawThenStops() public {
        uint256 t0 = vm.getBlockTimestamp(); // not block.timestamp: via-IR re-reads it after vm.warp
        vm.prank(customer);
        reg.deauthorizeSigner(pid, signer);
        assertEq(reg.signerStatus(pid, customer, signer).validUntil, t0 + THAW, "valid until");
        // usage run before deauthorization can still be settled during the thaw
        (uint64 units,) = _settle(SIGNER_PK, 10);
        assertEq(units, 10, "settled during thaw");
        vm.warp(t0 + THAW);
        assertTrue(!reg.signerStatus(pid, customer, signer).authorized, "no longer authorized");
        LicenseRegistry.Usage memory u = _usage(pid, customer, 20);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.SignerNotAuthorized.selector, pid, customer, signer));
        reg.settle(u, sig);
    }

    function test_ReauthorizedSignerKeepsItsCounter() public {
        _settle(SIGNER_PK, 50);
        vm.prank(customer);
        reg.deauthorizeSigner(pid, signer);
        vm.warp(block.timestamp + THAW);
        vm.prank(customer);
        reg.authorizeSigner(pid, signer);
        (uint64 units, uint256 amount) = _settle(SIGNER_PK, 50);
        assertEq(units, 0, "old receipt does not charge again");
        assertEq(amount, 0, "no wei");
        assertEq(reg.signerStatus(pid, customer, signer).settledUnits, 50, "counter kept");
    }

    // ------------------------------------------------------------ settlement

    function test_SettleChargesDeltaAndSplitsFee() public {
        vm.expectEmit(true, true, true, true);
        emit Settled(pid, customer, signer, 100, 100 * PRICE, 100, 0);
        (uint64 units, uint256 amount) = _settle(SIGNER_PK, 100);
        assertEq(units, 100, "units");
        assertEq(amount, 100 * PRICE, "amount");
        (units, amount) = _settle(SIGNER_PK, 250);
        assertEq(units, 150, "delta units");
        assertEq(amount, 150 * PRICE, "delta amount");
        assertEq(reg.revenueOf(treasury), 250 * PRICE * 3000 / 10_000, "treasury 30%");
        assertEq(reg.revenueOf(vendor), 250 * PRICE * 7000 / 10_000, "vendor 70%");
        LicenseRegistry.LicenseStatus memory st = _status();
        assertEq(st.balance, 1 ether - 250 * PRICE, "balance");
        assertEq(st.settledUnits, 250, "settled units");
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
        emit ReceiptIgnored(pid, customer, signer, 100, 100);
        (uint64 units, uint256 amount) = reg.settle(u, sig);
        assertEq(units + amount, 0, "replay charges nothing");
        (units, amount) = _settle(SIGNER_PK, 40);
        assertEq(units + amount, 0, "stale charges nothing");
        assertEq(_status().balance, bal, "balance unchanged");
    }

    function test_SignersHaveIndependentCounters() public {
        vm.prank(customer);
        reg.authorizeSigner(pid, signer2);
        _settle(SIGNER_PK, 100);
        (uint64 units,) = _settle(SIGNER2_PK, 30);
        assertEq(units, 30, "second signer counts from zero");
        assertEq(_status().settledUnits, 130, "total over signers");
        assertEq(reg.signerStatus(pid, customer, signer).settledUnits, 100, "signer 1");
        assertEq(reg.signerStatus(pid, customer, signer2).settledUnits, 30, "signer 2");
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

    function test_ShortfallChargesWhatTheBalanceCoversAndDeactivates() public {
        vm.prank(vendor);
        bytes32 p2 = reg.registerProduct("pricey", 1 ether);
        vm.startPrank(customer);
        reg.deposit{value: 2.5 ether}(p2, address(0));
        reg.authorizeSigner(p2, signer);
        vm.stopPrank();

        LicenseRegistry.Usage memory u = _usage(p2, customer, 5);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        (uint64 units, uint256 amount) = reg.settle(u, sig);
        assertEq(units, 2, "units the balance covers");
        assertEq(amount, 2 ether, "wei");
        LicenseRegistry.LicenseStatus memory st = reg.licenseStatus(p2, customer, bytes32(0));
        assertEq(st.unpaidUnits, 3, "unpaid");
        assertEq(st.balance, 0.5 ether, "remainder below one unit");
        assertEq(uint8(st.reason), uint8(LicenseRegistry.Reason.Exhausted), "Exhausted");

        // topping up does not clear the debt by itself...
        vm.prank(customer);
        reg.deposit{value: 10 ether}(p2, address(0));
        assertEq(uint8(reg.licenseStatus(p2, customer, bytes32(0)).reason), 7, "still Exhausted");
        // ...settling the same receipt again collects the rest, once
        (units, amount) = reg.settle(u, sig);
        assertEq(units, 3, "rest");
        assertEq(amount, 3 ether, "rest wei");
        (units, amount) = reg.settle(u, sig);
        assertEq(units + amount, 0, "then idempotent");
        st = reg.licenseStatus(p2, customer, bytes32(0));
        assertEq(uint8(st.reason), 0, "Ok again");
        assertEq(st.unpaidUnits, 0, "no debt");
        assertEq(st.balance, 7.5 ether, "balance");
    }

    function test_UnpaidIsSummedOverSigners() public {
        vm.prank(vendor);
        bytes32 p2 = reg.registerProduct("pricey", 1 ether);
        vm.startPrank(customer);
        reg.deposit{value: 1 ether}(p2, address(0));
        reg.authorizeSigner(p2, signer);
        reg.authorizeSigner(p2, signer2);
        vm.stopPrank();
        LicenseRegistry.Usage memory a = _usage(p2, customer, 3);
        LicenseRegistry.Usage memory b = _usage(p2, customer, 4);
        reg.settle(a, _sign(reg, SIGNER_PK, a)); // pays 1, unpaid 2
        reg.settle(b, _sign(reg, SIGNER2_PK, b)); // pays 0, unpaid 2 + 4
        assertEq(reg.licenseStatus(p2, customer, bytes32(0)).unpaidUnits, 6, "sum");
        vm.prank(customer);
        reg.deposit{value: 4 ether}(p2, address(0));
        reg.settle(b, _sign(reg, SIGNER2_PK, b)); // signer2 paid in full; signer1 still owes 2
        LicenseRegistry.LicenseStatus memory st = reg.licenseStatus(p2, customer, bytes32(0));
        assertEq(st.unpaidUnits, 2, "signer 1 still owes");
        assertEq(uint8(st.reason), 7, "still Exhausted");
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
        LicenseRegistry.Usage memory u = _usage(p, customer, units);
        (, uint256 amount) = r.settle(u, _sign(r, SIGNER_PK, u));
        assertEq(amount, cost, "charged");
        assertEq(r.revenueOf(treasury), cost * fee / 10_000, "treasury");
        assertEq(r.revenueOf(vendor) + r.revenueOf(treasury), cost, "nothing lost");
    }

    // ------------------------------------------------------------ EIP-712 and signatures

    function test_TypehashAndDomainAreComputedIndependently() public view {
        assertEq(
            reg.USAGE_TYPEHASH(),
            keccak256("Usage(bytes32 productId,address customer,uint64 cumulativeUnits,uint64 timestamp)"),
            "typehash"
        );
        bytes32 ds = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Sealbox LicenseRegistry"),
                keccak256("1"),
                block.chainid,
                address(reg)
            )
        );
        assertEq(reg.domainSeparator(), ds, "domain separator");
        LicenseRegistry.Usage memory u = _usage(pid, customer, 42);
        bytes32 sh = keccak256(abi.encode(reg.USAGE_TYPEHASH(), u.productId, u.customer, u.cumulativeUnits, u.timestamp));
        assertEq(reg.hashUsage(u), keccak256(abi.encodePacked("\x19\x01", ds, sh)), "digest");
    }

    function test_DigestMatchesForgeEip712Implementation() public view {
        LicenseRegistry.Usage memory u = _usage(pid, customer, 42);
        string memory json = string.concat(
            '{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},',
            '{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],',
            '"Usage":[{"name":"productId","type":"bytes32"},{"name":"customer","type":"address"},',
            '{"name":"cumulativeUnits","type":"uint64"},{"name":"timestamp","type":"uint64"}]},',
            '"primaryType":"Usage","domain":{"name":"Sealbox LicenseRegistry","version":"1","chainId":',
            vm.toString(block.chainid),
            ',"verifyingContract":"',
            vm.toString(address(reg)),
            '"},"message":{"productId":"',
            vm.toString(u.productId),
            '","customer":"',
            vm.toString(u.customer),
            '","cumulativeUnits":42,"timestamp":',
            vm.toString(uint256(u.timestamp)),
            "}}"
        );
        assertEq(reg.hashUsage(u), vm.eip712HashTypedData(json), "forge's EIP-712 digest");
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
        // a signature over another digest recovers another (unauthorized) address in settle
        LicenseRegistry.Usage memory u = _usage(pid, customer, 1);
        vm.expectRevert(abi.encodeWithSelector(LicenseRegistry.InvalidSignatureLength.selector, 0));
        reg.settle(u, "");
    }

    function test_TamperedReceiptDoesNotCharge() public {
        LicenseRegistry.Usage memory u = _usage(pid, customer, 10);
        bytes memory sig = _sign(reg, SIGNER_PK, u);
        u.cumulativeUnits = 1_000_000;
        vm.expectRevert(); // recovers an unrelated address
        reg.settle(u, sig);
        assertEq(_status().balance, 1 ether, "untouched");
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
        vm.prank(treasury);
        reg.withdraw();
        assertEq(treasury.balance, 300 * PRICE, "treasury paid");
        assertEq(address(reg).balance, 1 ether - 1000 * PRICE, "contract keeps the escrow");
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
        vm.warp(block.timestamp + THAW);
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
