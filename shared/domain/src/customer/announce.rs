//! `customer.updated` after a commit: published on the `updates` topic, then the marker's pending
//! notification cleared (the outbox of decision 0011). Whoever commits a new version announces it
//! this way: the processor after an event, a rebuild after a rebuild.

use super::store::CustomerUpdated;
use crate::ports::{BusMessage, CustomerStore, EventPublisher, PortError};
use jiff::Timestamp;

/// Publishes `update` and clears the pending notification of the marker `marker_key`. A failure
/// leaves the notification pending: the next delivery of the same event publishes it.
pub async fn announce<S: CustomerStore, P: EventPublisher>(
    store: &S,
    updates: &P,
    update: &CustomerUpdated,
    marker_key: &str,
    now: Timestamp,
) -> Result<(), PortError> {
    let event = update.to_event(now).map_err(|e| PortError::new("build customer.updated", e))?;
    let message = BusMessage::from_event(&event).map_err(|e| PortError::new("serialise update", e))?;
    updates.publish(&message).await?;
    store.mark_notified(marker_key).await
}
