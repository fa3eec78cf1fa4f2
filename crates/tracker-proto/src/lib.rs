//! The tracker protocol, sans-IO: BEP 15 messages, swarmsync's extensions on
//! the same port, connection ids and the bounded swarm table.
#![forbid(unsafe_code)]
