//! The license lease: what the last successful on-chain check said, and the
//! admission rule built on it — **pay before use**.
//!
//! A call runs only on a unit this state directory has already bought on
//! chain: the buyer's cumulative `bought` counter, confirmed by a mined
//! `settle` transaction, must exceed the units used (the larger of the
//! runtime's and the kernel's counts). Nothing else grants credit: not the
//! escrow balance, not the age of the lease, not the clock. Offline, units
//! already bought keep running and nothing more can be bought.
//!
//! The lease still carries the license's standing: a license the chain
//! found lapsed (revoked customer, revoked release, deactivated product,
//! deauthorized signer) admits nothing, bought units included, until a later
//! check finds it active again.

use serde::{Deserialize, Serialize};

/// The outcome of the last successful license check of one usage counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unix time (seconds, this machine's clock) of the check; informational.
    pub checked_at: u64,
    /// Block number the check read.
    pub block: u64,
    /// Timestamp of that block (the chain's clock; receipts expire by it).
    pub block_timestamp: u64,
    /// Price per unit in wei at that block.
    pub price_wei: u128,
    /// Escrow the customer can still buy with at that block (balance minus
    /// a pending withdrawal).
    pub available_wei: u128,
    /// Units this buyer (state directory) has bought on chain, as of block
    /// `bought_block` (the check's block, or a later purchase's).
    pub bought_units: u64,
    /// The block `bought_units` was read or confirmed at.
    pub bought_block: u64,
    /// Why the license was found lapsed at the last check (`None` = licensed).
    pub inactive: Option<String>,
    /// The lapse is the signer's: the customer deauthorized it.
    #[serde(default)]
    pub signer_deauthorized: bool,
    /// Why no further unit can be bought (no escrow, withdrawal pending);
    /// units already bought still run.
    pub cannot_buy: Option<String>,
    /// The release (code hash) the check was made for: every renewal checks it again.
    pub release: [u8; 32],
}

/// Why the lease does not admit another call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRefusal {
    /// The last check found the license lapsed.
    #[error("license inactive at the last on-chain check: {0}")]
    Inactive(String),
    /// The last check found the runtime's signer deauthorized by the customer.
    #[error("{0}")]
    SignerDeauthorized(String),
    /// Every unit bought so far is used: the next one must be bought first.
    #[error(
        "no prepaid unit left: {used} of {bought} bought unit(s) used{}",
        match .cannot_buy {
            Some(why) => format!("; no more can be bought: {why}"),
            None => "; the next block is being bought, retry shortly".to_owned(),
        }
    )]
    NotBought {
        /// Units used, including the call being admitted.
        used: u64,
        /// Units bought on chain by this buyer.
        bought: u64,
        /// Why no further unit can be bought, when that is known.
        cannot_buy: Option<String>,
    },
}

impl Lease {
    /// Admits the units up to `used_after` (the cumulative units used,
    /// including the ones being admitted): the license holds and every one
    /// of them was bought.
    pub fn admit(&self, used_after: u64) -> Result<(), LeaseRefusal> {
        if let Some(reason) = &self.inactive {
            return Err(if self.signer_deauthorized {
                LeaseRefusal::SignerDeauthorized(reason.clone())
            } else {
                LeaseRefusal::Inactive(reason.clone())
            });
        }
        if used_after > self.bought_units {
            return Err(LeaseRefusal::NotBought {
                used: used_after,
                bought: self.bought_units,
                cannot_buy: self.cannot_buy.clone(),
            });
        }
        Ok(())
    }

    /// Whole units the available escrow pays for at the lease's price
    /// (`u64::MAX` for a free product).
    pub fn affordable_units(&self) -> u64 {
        if self.price_wei == 0 {
            return u64::MAX;
        }
        u64::try_from(self.available_wei / self.price_wei).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            checked_at: 1_000,
            block: 7,
            block_timestamp: 1_000,
            price_wei: 100,
            available_wei: 1_000,
            bought_units: 5,
            bought_block: 7,
            inactive: None,
            signer_deauthorized: false,
            cannot_buy: None,
            release: [9; 32],
        }
    }

    #[test]
    fn admits_only_bought_units() {
        assert_eq!(lease().admit(5), Ok(()));
        let err = lease().admit(6).unwrap_err();
        assert!(matches!(
            err,
            LeaseRefusal::NotBought {
                used: 6,
                bought: 5,
                cannot_buy: None
            }
        ));
    }

    #[test]
    fn escrow_and_clock_grant_nothing() {
        // A huge balance and a lease from the future still admit only what was bought.
        let rich = Lease {
            available_wei: u128::MAX,
            checked_at: u64::MAX,
            ..lease()
        };
        assert!(rich.admit(6).is_err());
    }

    #[test]
    fn bought_units_run_when_no_more_can_be_bought() {
        let broke = Lease {
            available_wei: 0,
            cannot_buy: Some("no balance".into()),
            ..lease()
        };
        assert_eq!(broke.admit(5), Ok(()));
        let err = broke.admit(6).unwrap_err();
        assert!(err.to_string().contains("no balance"), "{err}");
    }

    #[test]
    fn a_lapsed_license_admits_nothing() {
        let revoked = Lease {
            inactive: Some("customer revoked by the vendor".into()),
            ..lease()
        };
        assert!(matches!(revoked.admit(1), Err(LeaseRefusal::Inactive(_))));
    }

    #[test]
    fn affordable_units_round_down_and_free_is_unbounded() {
        assert_eq!(lease().affordable_units(), 10);
        let odd = Lease {
            available_wei: 999,
            ..lease()
        };
        assert_eq!(odd.affordable_units(), 9);
        let free = Lease {
            price_wei: 0,
            ..lease()
        };
        assert_eq!(free.affordable_units(), u64::MAX);
    }
}
