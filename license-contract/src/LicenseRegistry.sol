// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LicenseRegistry — on-chain licenses, escrow and usage settlement for sealed Wasm algorithms.
/// @notice Vendors register products and publish releases (identified by the SHA-256 of the plaintext
/// Wasm). Customers fund an escrow per product and authorize runtime signer keys. Runtimes sign
/// cumulative EIP-712 `Usage` receipts; anyone may submit them to `settle`, which charges the escrow
/// for the units not yet settled and credits vendor and treasury (pull payments).
/// @dev No external libraries: EIP-712 hashing and signature recovery are implemented here.
/// The model is documented in docs/CONTRACT.md.
contract LicenseRegistry {
    // ------------------------------------------------------------------ types

    /// Why a license is (in)active. The first failing check wins, in this order.
    enum Reason {
        Ok,
        UnknownProduct,
        ProductInactive,
        UnknownRelease,
        ReleaseOfOtherProduct,
        ReleaseRevoked,
        CustomerRevoked,
        Exhausted,
        WithdrawalPending,
        NoBalance
    }

    /// A cumulative usage receipt signed (EIP-712) by a runtime signer the customer authorized.
    struct Usage {
        bytes32 productId;
        address customer;
        uint64 cumulativeUnits;
        uint64 timestamp;
    }

    /// Everything a runtime needs to decide whether it may run a module, in one call.
    struct LicenseStatus {
        bool active;
        Reason reason;
        address vendor;
        uint256 price;
        uint256 balance;
        uint256 available;
        uint256 thawing;
        uint64 thawEnd;
        uint64 settledUnits;
        uint64 unpaidUnits;
        uint64 blockNumber;
        uint64 blockTimestamp;
    }

    /// One settlement counter per (product, customer, signer).
    struct SignerStatus {
        bool authorized;
        uint64 validUntil;
        uint64 settledUnits;
        uint64 seenUnits;
    }

    /// One storage slot: vendor (160) + price (88) + active (8).
    struct Product {
        address vendor;
        uint88 price;
        bool active;
    }

    struct Release {
        bytes32 productId;
        bool revoked;
    }

    /// Slot 0 (touched by settle): balance (96) + settledUnits (64) + unpaidUnits (64) + revoked (8).
    /// Slot 1 (withdrawals only): thawing (96) + thawEnd (64).
    struct Account {
        uint96 balance;
        uint64 settledUnits;
        uint64 unpaidUnits;
        bool revoked;
        uint96 thawing;
        uint64 thawEnd;
    }

    /// One slot: validUntil (0 = never authorized, max = authorized, else end of deauthorization thaw),
    /// settled cumulative units, highest cumulative units seen in a receipt.
    struct Signer {
        uint64 validUntil;
        uint64 settled;
        uint64 seen;
    }

    // ------------------------------------------------------------------ constants

    /// EIP-712 type string of a usage receipt.
    bytes32 public constant USAGE_TYPEHASH =
        keccak256("Usage(bytes32 productId,address customer,uint64 cumulativeUnits,uint64 timestamp)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// EIP-712 domain name.
    string public constant NAME = "Sealbox LicenseRegistry";
    /// EIP-712 domain version.
    string public constant VERSION = "1";
    bytes32 private constant NAME_HASH = keccak256(bytes(NAME));
    bytes32 private constant VERSION_HASH = keccak256(bytes(VERSION));
    /// secp256k1 group order / 2: signatures with a larger `s` are malleable copies and refused.
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 private constant BPS = 10_000;
    uint64 private constant FOREVER = type(uint64).max;
    /// Longest thaw accepted at deployment (ten years).
    uint64 public constant MAX_THAW_SECONDS = 3650 days;

    // ------------------------------------------------------------------ immutables

    /// Platform fee in basis points of every settled amount (3000 = 30 % treasury, 70 % vendor).
    uint256 public immutable feeBps;
    /// Receives the platform fee.
    address public immutable treasury;
    /// Seconds a customer withdrawal or signer deauthorization waits before it takes effect.
    uint64 public immutable thawSeconds;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;
    bytes32 private immutable _cachedDomainSeparator;

    // ------------------------------------------------------------------ state

    /// productId => product.
    mapping(bytes32 => Product) public products;
    /// codeHash => release.
    mapping(bytes32 => Release) public releases;
    mapping(bytes32 => mapping(address => Account)) private _accounts;
    mapping(bytes32 => mapping(address => mapping(address => Signer))) private _signers;
    /// account => wei it may `withdraw()` (vendor and treasury revenue).
    mapping(address => uint256) public revenueOf;
    bool private transient _entered;

    // ------------------------------------------------------------------ events

    event ProductRegistered(bytes32 indexed productId, address indexed vendor, string name, uint256 price);
    event PriceChanged(bytes32 indexed productId, uint256 oldPrice, uint256 newPrice);
    event ProductActiveChanged(bytes32 indexed productId, bool active);
    event ReleasePublished(bytes32 indexed productId, bytes32 indexed codeHash);
    event ReleaseRevoked(bytes32 indexed productId, bytes32 indexed codeHash);
    event CustomerRevoked(bytes32 indexed productId, address indexed customer);
    event CustomerReinstated(bytes32 indexed productId, address indexed customer);
    event Deposited(
        bytes32 indexed productId, address indexed customer, address indexed from, uint256 amount, uint256 balance
    );
    event WithdrawalRequested(bytes32 indexed productId, address indexed customer, uint256 amount, uint64 thawEnd);
    event WithdrawalCancelled(bytes32 indexed productId, address indexed customer);
    event WithdrawalCompleted(bytes32 indexed productId, address indexed customer, uint256 amount);
    event SignerAuthorized(bytes32 indexed productId, address indexed customer, address indexed signer);
    event SignerDeauthorized(
        bytes32 indexed productId, address indexed customer, address indexed signer, uint64 validUntil
    );
    /// A receipt was settled: `units` charged for `amount` wei; `signerSettled` is the signer's new
    /// settled cumulative; `unpaidUnits` is the account's unpaid usage after this settlement (> 0 = shortfall).
    event Settled(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        uint64 units,
        uint256 amount,
        uint64 signerSettled,
        uint64 unpaidUnits
    );
    /// A receipt at or below the signer's settled cumulative was submitted; nothing changed.
    event ReceiptIgnored(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        uint64 cumulativeUnits,
        uint64 signerSettled
    );
    event RevenueWithdrawn(address indexed account, uint256 amount);

    // ------------------------------------------------------------------ errors

    error FeeTooHigh(uint256 feeBps);
    error ZeroTreasury();
    error ThawTooLong(uint256 thawSeconds, uint256 max);
    error EmptyName();
    error ProductExists(bytes32 productId);
    error UnknownProduct(bytes32 productId);
    error NotVendor(bytes32 productId, address caller, address vendor);
    error PriceTooHigh(uint256 price, uint256 max);
    error ZeroCodeHash();
    error ReleaseExists(bytes32 codeHash, bytes32 productId);
    error UnknownRelease(bytes32 codeHash);
    error ReleaseAlreadyRevoked(bytes32 codeHash);
    error ZeroAddress();
    error CustomerAlreadyRevoked(bytes32 productId, address customer);
    error CustomerNotRevoked(bytes32 productId, address customer);
    error ZeroDeposit();
    error BalanceOverflow(uint256 balance, uint256 deposit);
    error ZeroWithdrawal();
    error WithdrawalExceedsBalance(uint256 amount, uint256 balance);
    error NoWithdrawalPending(bytes32 productId, address customer);
    error ThawNotOver(uint64 thawEnd, uint64 nowTs);
    error SignerAlreadyAuthorized(bytes32 productId, address customer, address signer);
    error SignerNotAuthorized(bytes32 productId, address customer, address signer);
    error InvalidSignatureLength(uint256 length);
    error InvalidSignatureV(uint8 v);
    error SignatureSMalleable();
    error InvalidSignature();
    error NothingToWithdraw(address account);
    error TransferFailed(address to, uint256 amount);
    error Reentrancy();

    // ------------------------------------------------------------------ construction

    /// @param feeBps_ platform fee in basis points (≤ 10000).
    /// @param treasury_ receives the platform fee.
    /// @param thawSeconds_ delay of customer withdrawals and signer deauthorizations.
    constructor(uint256 feeBps_, address treasury_, uint64 thawSeconds_) {
        if (feeBps_ > BPS) revert FeeTooHigh(feeBps_);
        if (treasury_ == address(0)) revert ZeroTreasury();
        if (thawSeconds_ > MAX_THAW_SECONDS) revert ThawTooLong(thawSeconds_, MAX_THAW_SECONDS);
        feeBps = feeBps_;
        treasury = treasury_;
        thawSeconds = thawSeconds_;
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    modifier onlyVendor(bytes32 productId) {
        address vendor = products[productId].vendor;
        if (vendor == address(0)) revert UnknownProduct(productId);
        if (vendor != msg.sender) revert NotVendor(productId, msg.sender, vendor);
        _;
    }

    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }

    // ------------------------------------------------------------------ products (vendor)

    /// productId = keccak256(abi.encode(vendor, name)).
    function productIdOf(address vendor, string calldata name) public pure returns (bytes32) {
        return keccak256(abi.encode(vendor, name));
    }

    /// Registers a product owned by the caller, active, at `price` wei per unit.
    function registerProduct(string calldata name, uint256 price) external returns (bytes32 productId) {
        if (bytes(name).length == 0) revert EmptyName();
        _checkPrice(price);
        productId = productIdOf(msg.sender, name);
        if (products[productId].vendor != address(0)) revert ProductExists(productId);
        products[productId] = Product({vendor: msg.sender, price: uint88(price), active: true});
        emit ProductRegistered(productId, msg.sender, name, price);
    }

    /// Sets the price per unit; applies to every unit settled from now on.
    function setPrice(bytes32 productId, uint256 price) external onlyVendor(productId) {
        _checkPrice(price);
        Product storage p = products[productId];
        uint256 old = p.price;
        p.price = uint88(price);
        emit PriceChanged(productId, old, price);
    }

    /// Activates or deactivates a product (inactive products license nobody; settlement still works).
    function setActive(bytes32 productId, bool active) external onlyVendor(productId) {
        products[productId].active = active;
        emit ProductActiveChanged(productId, active);
    }

    /// Binds a release (SHA-256 of the plaintext Wasm) to a product. A code hash is bound at most once.
    function publishRelease(bytes32 productId, bytes32 codeHash) external onlyVendor(productId) {
        if (codeHash == bytes32(0)) revert ZeroCodeHash();
        bytes32 existing = releases[codeHash].productId;
        if (existing != bytes32(0)) revert ReleaseExists(codeHash, existing);
        releases[codeHash] = Release({productId: productId, revoked: false});
        emit ReleasePublished(productId, codeHash);
    }

    /// Revokes a release for good (a vendor pulls a broken build). Only the product's vendor.
    function revokeRelease(bytes32 codeHash) external {
        Release storage r = releases[codeHash];
        bytes32 productId = r.productId;
        if (productId == bytes32(0)) revert UnknownRelease(codeHash);
        _onlyVendor(productId);
        if (r.revoked) revert ReleaseAlreadyRevoked(codeHash);
        r.revoked = true;
        emit ReleaseRevoked(productId, codeHash);
    }

    /// Revokes a customer's license for this product (its escrow stays withdrawable, usage still settles).
    function revokeCustomer(bytes32 productId, address customer) external onlyVendor(productId) {
        if (customer == address(0)) revert ZeroAddress();
        Account storage a = _accounts[productId][customer];
        if (a.revoked) revert CustomerAlreadyRevoked(productId, customer);
        a.revoked = true;
        emit CustomerRevoked(productId, customer);
    }

    /// Lifts a customer revocation.
    function reinstateCustomer(bytes32 productId, address customer) external onlyVendor(productId) {
        Account storage a = _accounts[productId][customer];
        if (!a.revoked) revert CustomerNotRevoked(productId, customer);
        a.revoked = false;
        emit CustomerReinstated(productId, customer);
    }

    // ------------------------------------------------------------------ escrow (customer)

    /// Adds `msg.value` to the escrow of (productId, customer); customer 0 means the caller.
    function deposit(bytes32 productId, address customer) external payable {
        if (products[productId].vendor == address(0)) revert UnknownProduct(productId);
        if (msg.value == 0) revert ZeroDeposit();
        if (customer == address(0)) customer = msg.sender;
        Account storage a = _accounts[productId][customer];
        uint256 balance = uint256(a.balance) + msg.value;
        if (balance > type(uint96).max) revert BalanceOverflow(a.balance, msg.value);
        a.balance = uint96(balance);
        emit Deposited(productId, customer, msg.sender, msg.value, balance);
    }

    /// Starts (or restarts, replacing any pending request) a withdrawal of `amount` from the caller's
    /// escrow. It can be completed `thawSeconds` later; until then settlement may still charge the escrow.
    function requestWithdrawal(bytes32 productId, uint256 amount) external {
        if (amount == 0) revert ZeroWithdrawal();
        Account storage a = _accounts[productId][msg.sender];
        uint256 balance = a.balance;
        if (amount > balance) revert WithdrawalExceedsBalance(amount, balance);
        uint64 thawEnd = uint64(block.timestamp) + thawSeconds;
        a.thawing = uint96(amount);
        a.thawEnd = thawEnd;
        emit WithdrawalRequested(productId, msg.sender, amount, thawEnd);
    }

    /// Cancels the caller's pending withdrawal.
    function cancelWithdrawal(bytes32 productId) external {
        Account storage a = _accounts[productId][msg.sender];
        if (a.thawing == 0) revert NoWithdrawalPending(productId, msg.sender);
        a.thawing = 0;
        a.thawEnd = 0;
        emit WithdrawalCancelled(productId, msg.sender);
    }

    /// Pays out the caller's pending withdrawal once thawed: min(requested, current balance).
    function completeWithdrawal(bytes32 productId) external nonReentrant returns (uint256 amount) {
        Account storage a = _accounts[productId][msg.sender];
        uint256 thawing = a.thawing;
        if (thawing == 0) revert NoWithdrawalPending(productId, msg.sender);
        uint64 thawEnd = a.thawEnd;
        if (block.timestamp < thawEnd) revert ThawNotOver(thawEnd, uint64(block.timestamp));
        uint256 balance = a.balance;
        amount = thawing < balance ? thawing : balance;
        a.balance = uint96(balance - amount);
        a.thawing = 0;
        a.thawEnd = 0;
        emit WithdrawalCompleted(productId, msg.sender, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------ signers (customer)

    /// Authorizes `signer` to sign usage receipts for the caller's license of `productId`.
    function authorizeSigner(bytes32 productId, address signer) external {
        if (products[productId].vendor == address(0)) revert UnknownProduct(productId);
        if (signer == address(0)) revert ZeroAddress();
        Signer storage s = _signers[productId][msg.sender][signer];
        if (s.validUntil == FOREVER) revert SignerAlreadyAuthorized(productId, msg.sender, signer);
        s.validUntil = FOREVER;
        emit SignerAuthorized(productId, msg.sender, signer);
    }

    /// Deauthorizes `signer`. Its receipts still settle for `thawSeconds`, so usage already run is paid.
    /// Its counter is kept: re-authorizing it never lets an old receipt charge twice.
    function deauthorizeSigner(bytes32 productId, address signer) external {
        Signer storage s = _signers[productId][msg.sender][signer];
        if (s.validUntil != FOREVER) revert SignerNotAuthorized(productId, msg.sender, signer);
        uint64 validUntil = uint64(block.timestamp) + thawSeconds;
        s.validUntil = validUntil;
        emit SignerDeauthorized(productId, msg.sender, signer, validUntil);
    }

    // ------------------------------------------------------------------ settlement

    /// Settles a cumulative usage receipt; anyone may submit. Charges
    /// min(cumulative − signer's settled, balance / price) units at the current price.
    /// Receipts at or below the signer's settled cumulative change nothing (event `ReceiptIgnored`).
    function settle(Usage calldata receipt, bytes calldata signature)
        external
        returns (uint64 units, uint256 amount)
    {
        address signer = _recover(hashUsage(receipt), signature);
        bytes32 productId = receipt.productId;
        address customer = receipt.customer;
        Signer storage s = _signers[productId][customer][signer];
        if (block.timestamp >= s.validUntil) revert SignerNotAuthorized(productId, customer, signer);
        uint64 cumulative = receipt.cumulativeUnits;
        uint64 settled = s.settled;
        if (cumulative <= settled) {
            emit ReceiptIgnored(productId, customer, signer, cumulative, settled);
            return (0, 0);
        }
        Product storage p = products[productId];
        uint64 unpaid;
        (units, amount, unpaid) = _charge(s, _accounts[productId][customer], cumulative, settled, p.price);
        if (amount != 0) _credit(p.vendor, amount);
        emit Settled(productId, customer, signer, units, amount, settled + units, unpaid);
    }

    /// Pays the caller's accrued revenue (vendor share or treasury fee).
    function withdraw() external nonReentrant returns (uint256 amount) {
        amount = revenueOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        revenueOf[msg.sender] = 0;
        emit RevenueWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// The license of `customer` for `productId`, running release `codeHash` (bytes32(0) skips the
    /// release checks), with the reason of the first failing check.
    function licenseStatus(bytes32 productId, address customer, bytes32 codeHash)
        external
        view
        returns (LicenseStatus memory st)
    {
        Product memory p = products[productId];
        Account memory a = _accounts[productId][customer];
        st.vendor = p.vendor;
        st.price = p.price;
        st.balance = a.balance;
        st.thawing = a.thawing;
        st.thawEnd = a.thawEnd;
        st.available = a.balance > a.thawing ? a.balance - a.thawing : 0;
        st.settledUnits = a.settledUnits;
        st.unpaidUnits = a.unpaidUnits;
        st.blockNumber = uint64(block.number);
        st.blockTimestamp = uint64(block.timestamp);
        st.reason = _reason(p, a, productId, codeHash, st.available);
        st.active = st.reason == Reason.Ok;
    }

    /// A signer's state for (productId, customer): effective authorization and its counters.
    function signerStatus(bytes32 productId, address customer, address signer)
        external
        view
        returns (SignerStatus memory st)
    {
        Signer memory s = _signers[productId][customer][signer];
        st.authorized = block.timestamp < s.validUntil;
        st.validUntil = s.validUntil;
        st.settledUnits = s.settled;
        st.seenUnits = s.seen;
    }

    /// The EIP-712 domain separator of this deployment.
    function domainSeparator() public view returns (bytes32) {
        if (block.chainid == _cachedChainId && address(this) == _cachedThis) return _cachedDomainSeparator;
        return _buildDomainSeparator();
    }

    /// The EIP-712 digest a signer signs for `receipt`.
    function hashUsage(Usage calldata receipt) public view returns (bytes32 digest) {
        bytes32 structHash = keccak256(
            abi.encode(USAGE_TYPEHASH, receipt.productId, receipt.customer, receipt.cumulativeUnits, receipt.timestamp)
        );
        bytes32 ds = domainSeparator();
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0x1901000000000000000000000000000000000000000000000000000000000000)
            mstore(add(m, 0x02), ds)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
        }
    }

    /// Recovers the signer of `digest`; reverts on malformed, malleable (high-s) or invalid signatures.
    /// `signature` is r ‖ s ‖ v (65 bytes), v in {27, 28} or {0, 1}.
    function recoverSigner(bytes32 digest, bytes calldata signature) external pure returns (address) {
        return _recover(digest, signature);
    }

    // ------------------------------------------------------------------ internals

    function _reason(Product memory p, Account memory a, bytes32 productId, bytes32 codeHash, uint256 available)
        private
        view
        returns (Reason)
    {
        if (p.vendor == address(0)) return Reason.UnknownProduct;
        if (!p.active) return Reason.ProductInactive;
        if (codeHash != bytes32(0)) {
            Release memory r = releases[codeHash];
            if (r.productId == bytes32(0)) return Reason.UnknownRelease;
            if (r.productId != productId) return Reason.ReleaseOfOtherProduct;
            if (r.revoked) return Reason.ReleaseRevoked;
        }
        if (a.revoked) return Reason.CustomerRevoked;
        if (a.unpaidUnits != 0) return Reason.Exhausted;
        if (available < p.price) {
            return a.thawing != 0 && a.balance >= p.price ? Reason.WithdrawalPending : Reason.NoBalance;
        }
        return Reason.Ok;
    }

    /// Moves a signer's counter to `cumulative` (or as far as the balance pays for) and debits the account.
    function _charge(Signer storage s, Account storage a, uint64 cumulative, uint64 settled, uint256 price)
        private
        returns (uint64 units, uint256 amount, uint64 unpaid)
    {
        uint256 balance = a.balance;
        units = cumulative - settled;
        if (price != 0) {
            uint256 affordable = balance / price;
            if (affordable < units) units = uint64(affordable);
            amount = uint256(units) * price;
        }
        uint64 seen = s.seen;
        uint64 newSeen = cumulative > seen ? cumulative : seen;
        uint64 newSettled = settled + units;
        // account unpaid = sum over its signers of (seen - settled); replace this signer's share.
        unpaid = a.unpaidUnits - (seen - settled) + (newSeen - newSettled);
        s.settled = newSettled;
        s.seen = newSeen;
        a.balance = uint96(balance - amount);
        a.settledUnits += units;
        a.unpaidUnits = unpaid;
    }

    /// Splits `amount` between treasury (fee) and vendor.
    function _credit(address vendor, uint256 amount) private {
        uint256 fee = amount * feeBps / BPS;
        if (fee != 0) revenueOf[treasury] += fee;
        revenueOf[vendor] += amount - fee;
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignatureLength(signature.length);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        if (v < 27) v += 27;
        if (v != 27 && v != 28) revert InvalidSignatureV(v);
        if (uint256(s) > HALF_N) revert SignatureSMalleable();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function _onlyVendor(bytes32 productId) private view {
        address vendor = products[productId].vendor;
        if (vendor != msg.sender) revert NotVendor(productId, msg.sender, vendor);
    }

    function _checkPrice(uint256 price) private pure {
        if (price > type(uint88).max) revert PriceTooHigh(price, type(uint88).max);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
