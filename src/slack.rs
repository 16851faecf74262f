//! The Slack side: wire types (pure), the Web API client, and the Socket Mode connection.

pub mod events;
pub mod frames;
pub mod manifest;
pub mod socket;
pub mod types;
pub mod web;
