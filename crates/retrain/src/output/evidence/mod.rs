//! How sure a number is: the seeded bootstrap over test rows and its intervals
//! ([`bootstrap`]), paired differences and McNemar's exact test ([`paired`]), and accuracy
//! under shifted test priors ([`priors`]). All of it is computed from the run records and
//! their per-row predictions; nothing retrains.

pub mod bootstrap;
pub mod paired;
pub mod priors;
pub mod table;
