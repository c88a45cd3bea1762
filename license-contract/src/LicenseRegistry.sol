// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LicenseRegistry — on-chain licenses, escrow and prepaid usage for sealed Wasm algorithms.
/// @notice Vendors register products and publish releases (identified per product by the SHA-256 of
/// the plaintext Wasm). Customers fund an escrow per product and authorize runtime signer keys. A
/// runtime BUYS units before it runs them: it signs a cumulative EIP-712 `Usage` receipt (units
/// bought so far by one of its state directories, the "buyer", with a price cap and an expiry), and
/// `settle` charges the escrow for the units not yet bought, all or nothing, crediting vendor and
/// treasury (pull payments).
/// @dev No external libraries: EIP-712 hashing and signature recovery are implemented here.
/// The model is documented in docs/CONTRACT.md.
contract LicenseRegistry {
    // ------------------------------------------------------------------ types

    /// Why a license is (in)active. The first failing check wins, in this order. The last two
    /// (`WithdrawalPending`, `NoBalance`) mean "licensed, but the escrow cannot buy one more unit".
    enum Reason {
        Ok,
        UnknownProduct,
        ProductInactive,
        UnknownRelease,
        ReleaseRevoked,
        CustomerRevoked,
        WithdrawalPending,
        NoBalance
    }

    /// A cumulative purchase receipt signed (EIP-712) by a runtime signer the customer authorized:
    /// `buyer` (one runtime state directory) has bought `cumulativeUnits` units in total, at no more
    /// than `maxPrice` wei per unit, and the receipt is valid until `expiresAt` (unix seconds).
    struct Usage {
        bytes32 productId;
        address customer;
        bytes32 buyer;
        uint64 cumulativeUnits;
        uint128 maxPrice;
        uint64 expiresAt;
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
        uint64 boughtUnits;
        uint64 blockNumber;
        uint64 blockTimestamp;
    }

    /// A signer's authorization for (product, customer) and the units one of its buyers bought.
    struct SignerStatus {
        bool authorized;
        uint64 boughtUnits;
    }

    /// One storage slot: vendor (160) + price (88) + active (8).
    struct Product {
        address vendor;
        uint88 price;
        bool active;
    }

    /// A release of one product (keyed by product id and code hash).
    struct Release {
        bool published;
        bool revoked;
    }

    /// Slot 0 (touched by settle): balance (96) + boughtUnits (64) + revoked (8).
    /// Slot 1 (withdrawals only): thawing (96) + thawEnd (64).
    struct Account {
        uint96 balance;
        uint64 boughtUnits;
        bool revoked;
        uint96 thawing;
        uint64 thawEnd;
    }

    /// One slot per payee: revenue it may withdraw (128) + platform fee it accrued for the treasury
    /// but has not handed over yet (128). Settling writes only the vendor's slot; `collectFees`
    /// moves the fee to the treasury's `earned`.
    struct Revenue {
        uint128 earned;
        uint128 feeOwed;
    }

    // ------------------------------------------------------------------ constants

    /// EIP-712 type string of a purchase receipt.
    bytes32 public constant USAGE_TYPEHASH = keccak256(
        "Usage(bytes32 productId,address customer,bytes32 buyer,uint64 cumulativeUnits,uint128 maxPrice,uint64 expiresAt)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)");
    /// EIP-712 domain name.
    string public constant NAME = "Sealbox LicenseRegistry";
    /// EIP-712 domain version.
    string public constant VERSION = "2";
    bytes32 private constant NAME_HASH = keccak256(bytes(NAME));
    bytes32 private constant VERSION_HASH = keccak256(bytes(VERSION));
    /// secp256k1 group order / 2: signatures with a larger `s` are malleable copies and refused.
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 private constant BPS = 10_000;
    /// Longest thaw accepted at deployment (ten years).
    uint64 public constant MAX_THAW_SECONDS = 3650 days;

    // ------------------------------------------------------------------ immutables

    /// Platform fee in basis points of every purchase (3000 = 30 % treasury, 70 % vendor).
    uint256 public immutable feeBps;
    /// Receives the platform fee.
    address public immutable treasury;
    /// Seconds a customer withdrawal waits before it can complete.
    uint64 public immutable thawSeconds;
    /// EIP-712 domain salt, unique to this deployment (a fresh chain reusing the address gets another).
    bytes32 private immutable _salt;
    uint256 private immutable _cachedChainId;
    address private immutable _cachedThis;
    bytes32 private immutable _cachedDomainSeparator;

    // ------------------------------------------------------------------ state

    /// productId => product.
    mapping(bytes32 => Product) public products;
    mapping(bytes32 => mapping(bytes32 => Release)) private _releases;
    mapping(bytes32 => mapping(address => Account)) private _accounts;
    /// productId => customer => signer => authorized.
    mapping(bytes32 => mapping(address => mapping(address => bool))) private _authorized;
    /// productId => customer => signer => buyer => cumulative units bought.
    mapping(bytes32 => mapping(address => mapping(address => mapping(bytes32 => uint64)))) private _bought;
    mapping(address => Revenue) private _revenue;
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
    event SignerDeauthorized(bytes32 indexed productId, address indexed customer, address indexed signer);
    /// A purchase: `units` bought for `amount` wei at `price` per unit; `buyerCumulative` is the
    /// buyer's new cumulative units bought.
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
    /// A receipt at or below the buyer's cumulative units bought was submitted; nothing changed.
    event ReceiptIgnored(
        bytes32 indexed productId,
        address indexed customer,
        address indexed signer,
        bytes32 buyer,
        uint64 cumulativeUnits,
        uint64 bought
    );
    event FeesCollected(address indexed vendor, uint256 amount);
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
    error ReleaseExists(bytes32 productId, bytes32 codeHash);
    error UnknownRelease(bytes32 productId, bytes32 codeHash);
    error ReleaseAlreadyRevoked(bytes32 productId, bytes32 codeHash);
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
    error ReceiptExpired(uint64 expiresAt, uint64 now);
    error PriceAboveCap(uint256 price, uint256 maxPrice);
    error InsufficientEscrow(uint256 amount, uint256 balance);
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
    /// @param thawSeconds_ delay of customer withdrawals.
    constructor(uint256 feeBps_, address treasury_, uint64 thawSeconds_) {
        if (feeBps_ > BPS) revert FeeTooHigh(feeBps_);
        if (treasury_ == address(0)) revert ZeroTreasury();
        if (thawSeconds_ > MAX_THAW_SECONDS) revert ThawTooLong(thawSeconds_, MAX_THAW_SECONDS);
        feeBps = feeBps_;
        treasury = treasury_;
        thawSeconds = thawSeconds_;
        bytes32 parent = block.number == 0 ? bytes32(0) : blockhash(block.number - 1);
        bytes32 salt = keccak256(abi.encode(parent, block.prevrandao, block.chainid, address(this), block.timestamp));
        _salt = salt;
        _cachedChainId = block.chainid;
        _cachedThis = address(this);
        _cachedDomainSeparator = _buildDomainSeparator(salt);
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

    /// Sets the price per unit; applies to every unit bought from now on (a pending purchase
    /// signed with a lower `maxPrice` then reverts `PriceAboveCap` instead of paying more).
    function setPrice(bytes32 productId, uint256 price) external onlyVendor(productId) {
        _checkPrice(price);
        Product storage p = products[productId];
        uint256 old = p.price;
        p.price = uint88(price);
        emit PriceChanged(productId, old, price);
    }

    /// Activates or deactivates a product (inactive products license nobody).
    function setActive(bytes32 productId, bool active) external onlyVendor(productId) {
        products[productId].active = active;
        emit ProductActiveChanged(productId, active);
    }

    /// Publishes a release (SHA-256 of the plaintext Wasm) of a product. Releases are keyed by
    /// (product, code hash): another product publishing the same hash does not block this one.
    /// A release is published once per product (a revoked one stays revoked).
    function publishRelease(bytes32 productId, bytes32 codeHash) external onlyVendor(productId) {
        if (codeHash == bytes32(0)) revert ZeroCodeHash();
        Release storage r = _releases[productId][codeHash];
        if (r.published) revert ReleaseExists(productId, codeHash);
        r.published = true;
        emit ReleasePublished(productId, codeHash);
    }

    /// Revokes a release of a product for good (a vendor pulls a broken build).
    function revokeRelease(bytes32 productId, bytes32 codeHash) external onlyVendor(productId) {
        Release storage r = _releases[productId][codeHash];
        if (!r.published) revert UnknownRelease(productId, codeHash);
        if (r.revoked) revert ReleaseAlreadyRevoked(productId, codeHash);
        r.revoked = true;
        emit ReleaseRevoked(productId, codeHash);
    }

    /// Revokes a customer's license for this product (its escrow stays withdrawable).
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
    /// escrow. It can be completed `thawSeconds` later; until then purchases may still draw on it.
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

    /// Authorizes `signer` to buy units for the caller's license of `productId`. A re-authorized
    /// signer keeps its buyers' counters, so its old receipts never charge twice.
    function authorizeSigner(bytes32 productId, address signer) external {
        if (products[productId].vendor == address(0)) revert UnknownProduct(productId);
        if (signer == address(0)) revert ZeroAddress();
        mapping(address => bool) storage auth = _authorized[productId][msg.sender];
        if (auth[signer]) revert SignerAlreadyAuthorized(productId, msg.sender, signer);
        auth[signer] = true;
        emit SignerAuthorized(productId, msg.sender, signer);
    }

    /// Deauthorizes `signer` at once: its receipts stop settling in the next block. (Units are
    /// bought before they run, so there is no unpaid usage to wait for.)
    function deauthorizeSigner(bytes32 productId, address signer) external {
        mapping(address => bool) storage auth = _authorized[productId][msg.sender];
        if (!auth[signer]) revert SignerNotAuthorized(productId, msg.sender, signer);
        auth[signer] = false;
        emit SignerDeauthorized(productId, msg.sender, signer);
    }

    // ------------------------------------------------------------------ purchases

    /// Settles a cumulative purchase receipt; anyone may submit. All or nothing: buys
    /// `cumulativeUnits − bought(buyer)` units at the product's current price (≤ the receipt's
    /// `maxPrice`), or reverts. Receipts at or below the buyer's counter change nothing
    /// (event `ReceiptIgnored`, returns (0, 0)).
    function settle(Usage calldata receipt, bytes calldata signature) external returns (uint64 units, uint256 amount) {
        address signer = _recover(hashUsage(receipt), signature);
        bytes32 productId = receipt.productId;
        address customer = receipt.customer;
        if (!_authorized[productId][customer][signer]) revert SignerNotAuthorized(productId, customer, signer);
        uint64 expiresAt = receipt.expiresAt;
        if (block.timestamp > expiresAt) revert ReceiptExpired(expiresAt, uint64(block.timestamp));
        bytes32 buyer = receipt.buyer;
        uint64 cumulative = receipt.cumulativeUnits;
        mapping(bytes32 => uint64) storage counters = _bought[productId][customer][signer];
        uint64 bought = counters[buyer];
        if (cumulative <= bought) {
            emit ReceiptIgnored(productId, customer, signer, buyer, cumulative, bought);
            return (0, 0);
        }
        Product storage p = products[productId];
        uint256 price = p.price;
        if (price > receipt.maxPrice) revert PriceAboveCap(price, receipt.maxPrice);
        unchecked {
            units = cumulative - bought; // cumulative > bought
            amount = uint256(units) * price; // < 2^64 · 2^88
        }
        Account storage a = _accounts[productId][customer];
        uint256 balance = a.balance;
        if (amount > balance) revert InsufficientEscrow(amount, balance);
        counters[buyer] = cumulative;
        uint64 total = a.boughtUnits;
        unchecked {
            uint64 sum = total + units;
            a.boughtUnits = sum < total ? type(uint64).max : sum; // saturates (informational)
            a.balance = uint96(balance - amount); // amount ≤ balance
        }
        if (amount != 0) _credit(p.vendor, amount);
        emit Settled(productId, customer, signer, buyer, units, amount, cumulative, price);
    }

    /// Moves the platform fee the given vendors accrued to the treasury's withdrawable revenue;
    /// anyone may call. Returns the amount moved.
    function collectFees(address[] calldata vendors) external returns (uint256 amount) {
        uint128 total;
        for (uint256 i = 0; i < vendors.length; i++) {
            Revenue storage r = _revenue[vendors[i]];
            uint128 owed = r.feeOwed;
            if (owed == 0) continue;
            r.feeOwed = 0;
            total += owed; // checked: the sum is bounded by the ETH the registry holds
            emit FeesCollected(vendors[i], owed);
        }
        if (total != 0) _revenue[treasury].earned += total;
        return total;
    }

    /// Pays the caller's withdrawable revenue (vendor share, or collected fees for the treasury).
    function withdraw() external nonReentrant returns (uint256 amount) {
        Revenue storage r = _revenue[msg.sender];
        amount = r.earned;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        r.earned = 0;
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
        st.boughtUnits = a.boughtUnits;
        st.blockNumber = uint64(block.number);
        st.blockTimestamp = uint64(block.timestamp);
        st.reason = _reason(p, a, productId, codeHash, st.available);
        st.active = st.reason == Reason.Ok;
    }

    /// A signer's authorization for (productId, customer) and the cumulative units `buyer` bought.
    function signerStatus(bytes32 productId, address customer, address signer, bytes32 buyer)
        external
        view
        returns (SignerStatus memory st)
    {
        st.authorized = _authorized[productId][customer][signer];
        st.boughtUnits = _bought[productId][customer][signer][buyer];
    }

    /// Whether `codeHash` is a published release of `productId`, and whether it was revoked.
    function releaseOf(bytes32 productId, bytes32 codeHash) external view returns (bool published, bool revoked) {
        Release memory r = _releases[productId][codeHash];
        return (r.published, r.revoked);
    }

    /// Revenue `account` may `withdraw()` now.
    function revenueOf(address account) external view returns (uint256) {
        return _revenue[account].earned;
    }

    /// Platform fee `vendor` accrued that `collectFees` has not moved to the treasury yet.
    function feeOwedBy(address vendor) external view returns (uint256) {
        return _revenue[vendor].feeOwed;
    }

    /// The EIP-712 domain salt of this deployment.
    function deploymentSalt() external view returns (bytes32) {
        return _salt;
    }

    /// The EIP-712 domain separator of this deployment.
    function domainSeparator() public view returns (bytes32) {
        if (block.chainid == _cachedChainId && address(this) == _cachedThis) return _cachedDomainSeparator;
        return _buildDomainSeparator(_salt);
    }

    /// The EIP-712 digest a signer signs for `receipt`.
    function hashUsage(Usage calldata receipt) public view returns (bytes32 digest) {
        bytes32 structHash = keccak256(
            abi.encode(
                USAGE_TYPEHASH,
                receipt.productId,
                receipt.customer,
                receipt.buyer,
                receipt.cumulativeUnits,
                receipt.maxPrice,
                receipt.expiresAt
            )
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
            Release memory r = _releases[productId][codeHash];
            if (!r.published) return Reason.UnknownRelease;
            if (r.revoked) return Reason.ReleaseRevoked;
        }
        if (a.revoked) return Reason.CustomerRevoked;
        if (available < p.price) {
            return a.thawing != 0 && a.balance >= p.price ? Reason.WithdrawalPending : Reason.NoBalance;
        }
        return Reason.Ok;
    }

    /// Credits the vendor's share and accrues the treasury's fee in the vendor's own revenue slot
    /// (one storage write per purchase; `collectFees` hands the fee over).
    function _credit(address vendor, uint256 amount) private {
        uint256 fee = amount * feeBps / BPS;
        Revenue storage r = _revenue[vendor];
        r.earned += uint128(amount - fee);
        r.feeOwed += uint128(fee);
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

    function _buildDomainSeparator(bytes32 salt) private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this), salt));
    }

    function _checkPrice(uint256 price) private pure {
        if (price > type(uint88).max) revert PriceTooHigh(price, type(uint88).max);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
