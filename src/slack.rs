//! The Slack side: Socket Mode frames (pure) and the Socket Mode connection manager.

pub mod frames;
pub mod socket;
