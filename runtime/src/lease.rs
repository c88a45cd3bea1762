//! The license lease: what the runtime may do on the strength of the last
//! successful on-chain license check.
//!
//! Every call is admitted by the same rule, online or not: the license was
//! active at the last check, that check is fresh enough, and the units not yet
//! settled on chain — including the call about to run — are covered by the
//! escrow balance the chain last reported. Online, the lease is refreshed before
//! it is consulted; offline (RPC unreachable), the stored lease decides alone,
//! so the runtime never runs more calls than the escrow covers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The outcome of one successful `licenseStatus` call, kept as the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unix time (seconds) of the check.
    pub checked_at: u64,
    /// Block number the check read.
    pub block: u64,
    /// Escrow balance of (product, customer) in wei at that block.
    pub balance_wei: u128,
    /// Price per unit in wei at that block.
    pub price_wei: u128,
    /// Units this runtime's signer had settled on chain at that block.
    pub settled_units: u64,
    /// Why the license was found inactive at the last check (`None` = active).
    #[serde(default)]
    pub inactive: Option<String>,
}

/// How long a lease stays usable without a fresh check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// Maximum age of the last successful check while the RPC is unreachable.
    pub max_age: Duration,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
        }
    }
}

/// Why the lease does not admit another call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRefusal {
    /// The last successful license check is older than the policy allows.
    #[error(
        "license lease expired: the last successful on-chain check was {age_secs} s ago \
         (limit {max_age_secs} s) and the RPC cannot be reached to renew it"
    )]
    Expired {
        /// Age of the lease in seconds.
        age_secs: u64,
        /// The configured maximum age in seconds.
        max_age_secs: u64,
    },
    /// The last check found the license inactive.
    #[error("license inactive at the last on-chain check: {0}")]
    Inactive(String),
    /// Running one more unit would exceed what the escrow balance covers.
    #[error(
        "escrow exhausted: {unsettled} unsettled unit(s) at {price_wei} wei need {needed_wei} wei \
         but the escrow balance is {balance_wei} wei; deposit more (`runtime license deposit`) \
         or settle"
    )]
    EscrowExhausted {
        /// Unsettled units including the call being admitted.
        unsettled: u64,
        /// Price per unit in wei.
        price_wei: u128,
        /// Wei those units cost.
        needed_wei: u128,
        /// Last known escrow balance in wei.
        balance_wei: u128,
    },
}

impl Lease {
    /// Admits one more unit when the lease is fresh (at `now`, Unix seconds) and
    /// `used_units` (cumulative units this runtime's signer has used, including
    /// the one being admitted) minus the settled units is covered by the balance.
    pub fn admit(
        &self,
        now: u64,
        used_units: u64,
        policy: &LeasePolicy,
    ) -> Result<(), LeaseRefusal> {
        if let Some(reason) = &self.inactive {
            return Err(LeaseRefusal::Inactive(reason.clone()));
        }
        let age = now.saturating_sub(self.checked_at);
        if age > policy.max_age.as_secs() {
            return Err(LeaseRefusal::Expired {
                age_secs: age,
                max_age_secs: policy.max_age.as_secs(),
            });
        }
        self.covers(used_units)
    }

    /// Checks only the balance rule: the unsettled part of `used_units` costs no
    /// more than the last known escrow balance.
    pub fn covers(&self, used_units: u64) -> Result<(), LeaseRefusal> {
        let unsettled = used_units.saturating_sub(self.settled_units);
        let needed = u128::from(unsettled).saturating_mul(self.price_wei);
        if needed > self.balance_wei {
            return Err(LeaseRefusal::EscrowExhausted {
                unsettled,
                price_wei: self.price_wei,
                needed_wei: needed,
                balance_wei: self.balance_wei,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            checked_at: 1_000,
            block: 7,
            balance_wei: 1_000,
            price_wei: 100,
            settled_units: 5,
            inactive: None,
        }
    }

    #[test]
    fn admits_while_fresh_and_covered() {
        let policy = LeasePolicy {
            max_age: Duration::from_secs(60),
        };
        // 5 settled + 10 unsettled units cost exactly the balance.
        assert_eq!(lease().admit(1_060, 15, &policy), Ok(()));
    }

    #[test]
    fn refuses_the_unit_the_balance_does_not_cover() {
        let policy = LeasePolicy::default();
        let err = lease().admit(1_000, 16, &policy).unwrap_err();
        assert_eq!(
            err,
            LeaseRefusal::EscrowExhausted {
                unsettled: 11,
                price_wei: 100,
                needed_wei: 1_100,
                balance_wei: 1_000
            }
        );
    }

    #[test]
    fn refuses_a_stale_lease() {
        let policy = LeasePolicy {
            max_age: Duration::from_secs(60),
        };
        let err = lease().admit(1_061, 6, &policy).unwrap_err();
        assert!(matches!(err, LeaseRefusal::Expired { age_secs: 61, .. }));
    }

    #[test]
    fn refuses_after_the_chain_said_inactive() {
        let revoked = Lease {
            inactive: Some("customer revoked by the vendor".into()),
            ..lease()
        };
        let err = revoked
            .admit(1_000, 6, &LeasePolicy::default())
            .unwrap_err();
        assert!(matches!(err, LeaseRefusal::Inactive(_)));
    }

    #[test]
    fn free_products_never_exhaust() {
        let free = Lease {
            price_wei: 0,
            balance_wei: 0,
            ..lease()
        };
        assert_eq!(free.covers(u64::MAX), Ok(()));
    }
}
