//! How sure a number is: the seeded bootstrap over test rows and its intervals
//! ([`bootstrap`]), paired differences and McNemar's exact test ([`paired`]), and the
//! intervals and marks of a table's rows ([`table`]). All of it is computed from the run
//! records and their per-row predictions; nothing retrains. (Accuracy under shifted test
//! priors is [`crate::eval::priors`].)

pub mod bootstrap;
pub mod paired;
pub mod row;
pub mod table;
