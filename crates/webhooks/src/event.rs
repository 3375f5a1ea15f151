//! The event envelope (CloudEvents 1.0, JSON format) and the closed set of event types.
//!
//! Every event leaves boxoffice in this one shape, to the Redis stream and to webhooks
//! alike, so a bridge to Kafka or another broker can forward it without knowing boxoffice:
//! CloudEvents' JSON format is what those bridges read.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The CloudEvents version every envelope declares.
pub const SPEC_VERSION: &str = "1.0";

/// What happened, as the stable dotted name receivers filter on.
///
/// The names are a contract with receivers: add, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ReservationHeld,
    ReservationConfirmed,
    ReservationCancelled,
    ReservationExpired,
    ReservationRefunded,
    SchedulePublished,
    ScheduleChanged,
    ScheduleCancelled,
    TopupConfirmed,
    TicketCheckedIn,
}

/// A type name that is not one of `EventType::ALL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::ReservationHeld,
        EventType::ReservationConfirmed,
        EventType::ReservationCancelled,
        EventType::ReservationExpired,
        EventType::ReservationRefunded,
        EventType::SchedulePublished,
        EventType::ScheduleChanged,
        EventType::ScheduleCancelled,
        EventType::TopupConfirmed,
        EventType::TicketCheckedIn,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::ReservationHeld => "reservation.held",
            EventType::ReservationConfirmed => "reservation.confirmed",
            EventType::ReservationCancelled => "reservation.cancelled",
            EventType::ReservationExpired => "reservation.expired",
            EventType::ReservationRefunded => "reservation.refunded",
            EventType::SchedulePublished => "schedule.published",
            EventType::ScheduleChanged => "schedule.changed",
            EventType::ScheduleCancelled => "schedule.cancelled",
            EventType::TopupConfirmed => "topup.confirmed",
            EventType::TicketCheckedIn => "ticket.checked_in",
        }
    }

    pub fn parse(name: &str) -> Result<EventType, UnknownEventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| UnknownEventType(name.to_owned()))
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        EventType::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// One event in the CloudEvents 1.0 JSON format.
///
/// `id` is unique per `source` and is also the Standard Webhooks `webhook-id`, so every
/// retry of one event carries the same id and receivers can drop duplicates by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    /// Which deployment produced it (a URI reference, e.g. `/boxoffice` or
    /// `https://tickets.example.com`).
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// The object the event is about, e.g. `reservations/42`: receivers route and order by it.
    pub subject: String,
    pub datacontenttype: String,
    pub data: serde_json::Value,
}

impl CloudEvent {
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: EventType,
        time: DateTime<Utc>,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) -> CloudEvent {
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: id.into(),
            source: source.into(),
            event_type,
            time,
            subject: subject.into(),
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    /// The exact bytes sent and signed. Compact JSON: the signature covers these bytes, and a
    /// receiver must verify the raw body before parsing it.
    pub fn to_body(&self) -> Vec<u8> {
        // A struct of strings and a JSON value always serialises; the fallback is unreachable
        // but keeps the signature of the function honest without a panic.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// RFC 3339 with microseconds and `Z`, the form CloudEvents' `time` attribute requires.
mod rfc3339 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_type_round_trips_by_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(t.as_str()));
        }
        assert_eq!(
            EventType::parse("reservation.sold"),
            Err(UnknownEventType("reservation.sold".into()))
        );
    }

    #[test]
    fn the_names_are_the_issues_names() {
        let names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "reservation.held",
                "reservation.confirmed",
                "reservation.cancelled",
                "reservation.expired",
                "reservation.refunded",
                "schedule.published",
                "schedule.changed",
                "schedule.cancelled",
                "topup.confirmed",
                "ticket.checked_in",
            ]
        );
    }

    #[test]
    fn envelope_has_the_cloudevents_attributes() {
        let time = Utc.with_ymd_and_hms(2026, 12, 5, 17, 0, 0).unwrap();
        let event = CloudEvent::new(
            "0193a1b2-0000-7000-8000-000000000001",
            "/boxoffice",
            EventType::ReservationHeld,
            time,
            "reservations/42",
            serde_json::json!({ "reservationId": "42", "seatIds": ["7", "8"] }),
        );
        let json: serde_json::Value = serde_json::from_slice(&event.to_body()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], "0193a1b2-0000-7000-8000-000000000001");
        assert_eq!(json["source"], "/boxoffice");
        assert_eq!(json["type"], "reservation.held");
        assert_eq!(json["time"], "2026-12-05T17:00:00.000000Z");
        assert_eq!(json["subject"], "reservations/42");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["data"]["seatIds"][1], "8");
        let back: CloudEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn an_unknown_type_is_refused_when_reading_an_envelope() {
        let mut json = serde_json::to_value(CloudEvent::new(
            "1",
            "/b",
            EventType::TopupConfirmed,
            Utc::now(),
            "topups/1",
            serde_json::Value::Null,
        ))
        .unwrap();
        json["type"] = "topup.lost".into();
        assert!(serde_json::from_value::<CloudEvent>(json).is_err());
    }
}
