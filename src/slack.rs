//! The Slack side: wire types and request/answer types (pure), the Web API client, and the
//! Socket Mode connection.

pub mod events;
pub mod frames;
pub mod manifest;
pub mod requests;
pub mod socket;
pub mod types;
pub mod web;
