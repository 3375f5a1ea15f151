//! Properties over arbitrary claims and tamperings: no altered code verifies, and an
//! offline batch never admits a ticket twice.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::HashMap;

use boxoffice_ticket_codes::batch::{self, OfflineScan};
use boxoffice_ticket_codes::code::{self, TicketClaims};
use boxoffice_ticket_codes::door::{DEFAULT_DOORS_OPEN_BEFORE, Show, TicketRecord, TicketStatus};
use boxoffice_ticket_codes::{CheckInStatus, KeyId, KeyRing, SigningKeyConfig, TicketSigner};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use proptest::prelude::*;

fn signer() -> TicketSigner {
    SigningKeyConfig::new(KeyId(3), [42; 32]).signer()
}

fn ring() -> KeyRing {
    let s = signer();
    let mut ring = KeyRing::new();
    ring.insert(s.key_id(), &s.public_key(), None).unwrap();
    ring
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 24, 19, 0, 0).unwrap()
}

fn claims() -> impl Strategy<Value = TicketClaims> {
    (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()).prop_map(
        |(ticket_id, schedule_id, seat_id, issued_at)| TicketClaims {
            key_id: KeyId(3),
            ticket_id,
            schedule_id,
            seat_id,
            issued_at,
        },
    )
}

proptest! {
    #[test]
    fn a_signed_code_verifies_to_its_claims(claims in claims()) {
        let text = signer().sign(claims);
        prop_assert_eq!(ring().verify(&text, now()), Ok(claims));
    }

    #[test]
    fn an_altered_byte_is_invalid(claims in claims(), index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let text = signer().sign(claims);
        let mut bytes = data_encoding::BASE32_NOPAD.decode(text.as_bytes()).unwrap();
        let i = index.index(bytes.len());
        bytes[i] ^= flip;
        let altered = data_encoding::BASE32_NOPAD.encode(&bytes);
        prop_assert!(ring().verify(&altered, now()).is_err());
    }

    #[test]
    fn an_altered_character_is_invalid(claims in claims(), index in any::<prop::sample::Index>(), replacement in "[A-Z2-7]") {
        let text = signer().sign(claims);
        let i = index.index(text.len());
        prop_assume!(text[i..=i] != replacement);
        let altered = format!("{}{}{}", &text[..i], replacement, &text[i + 1..]);
        prop_assert!(ring().verify(&altered, now()).is_err());
    }

    #[test]
    fn a_truncated_or_extended_code_is_invalid(claims in claims(), cut in 1usize..8, extra in "[A-Z2-7]{1,8}") {
        let text = signer().sign(claims);
        prop_assert!(ring().verify(&text[..text.len() - cut], now()).is_err());
        let longer = format!("{text}{extra}");
        prop_assert!(ring().verify(&longer, now()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_verify_and_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(parsed) = code::from_bytes(&bytes) {
            let verified = ring().verify_code(&parsed, now());
            prop_assert!(verified.is_err());
        }
    }

    /// Whatever the scans, their order and their nonces, each ticket is admitted at most
    /// once, by its earliest scan, and every later scan of it names that admission.
    #[test]
    fn a_batch_admits_each_ticket_at_most_once_by_its_earliest_scan(
        scans in prop::collection::vec((0i64..5, 0u8..4, 0i64..120, 0u8..12), 0..40)
    ) {
        let show = Show::new(5, now() + Duration::minutes(30), DEFAULT_DOORS_OPEN_BEFORE, now() + Duration::hours(4));
        let records: HashMap<i64, TicketRecord> = (0..5)
            .map(|t| (t, TicketRecord {
                id: t,
                schedule_id: 5,
                seat_id: t,
                issued_at: 0,
                status: if t == 4 { TicketStatus::Revoked } else { TicketStatus::Valid },
                admission: None,
            }))
            .collect();
        let offline: Vec<OfflineScan> = scans
            .iter()
            .map(|&(ticket, gate, minutes, nonce)| OfflineScan {
                verified: Ok(TicketClaims { key_id: KeyId(3), ticket_id: ticket, schedule_id: 5, seat_id: ticket, issued_at: 0 }),
                gate: format!("gate-{gate}"),
                scanned_at: now() - Duration::minutes(60) + Duration::minutes(minutes),
                nonce: format!("n{nonce}"),
                replay: None,
            })
            .collect();
        let plan = batch::plan(&offline, &records, &show, now() + Duration::hours(1));
        prop_assert_eq!(plan.len(), offline.len());
        for ticket in 0..5 {
            let admits: Vec<usize> = (0..plan.len())
                .filter(|&i| plan[i].admit && offline[i].verified.as_ref().unwrap().ticket_id == ticket)
                .collect();
            prop_assert!(admits.len() <= 1);
            if ticket == 4 {
                prop_assert!(admits.is_empty());
            }
            if let Some(&winner) = admits.first() {
                let first = plan[winner].outcome.first.clone();
                for i in 0..plan.len() {
                    if offline[i].verified.as_ref().unwrap().ticket_id != ticket || i == winner {
                        continue;
                    }
                    // An earlier scan of the ticket could not admit: before the doors, or
                    // a nonce already spent on another code.
                    prop_assert!(plan[i].at >= plan[winner].at
                        || matches!(plan[i].outcome.status, CheckInStatus::NotYet | CheckInStatus::Invalid));
                    if plan[i].outcome.status == CheckInStatus::AlreadyUsed {
                        prop_assert_eq!(&plan[i].outcome.first, &first);
                    }
                }
            }
            // Same nonce, same answer.
            for i in 0..plan.len() {
                if let Some(j) = plan[i].repeat_of {
                    prop_assert_eq!(&offline[i].nonce, &offline[j].nonce);
                    prop_assert_eq!(&plan[i].outcome, &plan[j].outcome);
                    prop_assert!(!plan[i].admit);
                }
            }
        }
    }
}
