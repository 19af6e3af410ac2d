//! Queries: a body starting with `{` is a `POST /api/v1/query` body
//! (`{"queries": [...]}`), anything else is a URL query string for
//! `GET /api/v1/query`. Each query is parsed and planned as the server does
//! before it reads. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minutely_server::auth::{Caller, ALL_APPS};
use minutely_server::{check_query, QueryInput};
use minutely_store::Scope;
use serde::Deserialize;

const NOW: f64 = 1_764_100_000.0;

#[derive(Deserialize)]
struct Batch {
    queries: Vec<QueryInput>,
}

fuzz_target!(|data: &[u8]| {
    let callers = [
        Caller {
            app: ALL_APPS.into(),
            scope: Scope::Admin,
        },
        Caller {
            app: "shop".into(),
            scope: Scope::Read,
        },
        Caller {
            app: "shop".into(),
            scope: Scope::Push,
        },
    ];
    let inputs: Vec<QueryInput> = if data.first() == Some(&b'{') {
        match serde_json::from_slice::<Batch>(data) {
            Ok(b) => b.queries,
            Err(_) => return,
        }
    } else {
        match QueryInput::from_pairs(form_urlencoded::parse(data)) {
            Ok(q) => vec![q],
            Err(_) => return,
        }
    };
    for q in inputs.into_iter().take(200) {
        for c in &callers {
            let r = check_query(q.clone(), c, NOW);
            if c.scope == Scope::Push {
                assert!(r.is_err(), "a push key may not query");
            }
        }
    }
});
