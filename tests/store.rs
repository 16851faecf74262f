//! The store suite: every case runs on SQLite and on PostgreSQL (`sqlite::…` and
//! `postgres::…` in the test output).

mod support;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use slack_bridge::{
    config::Secret,
    crypto::EncryptionKey,
    ids::{ChannelId, TeamId, Ts},
    store::{
        Ghost, HistoryRun, Login, LoginState, MessageRow, NewSlackEvent, Outgoing, Portal,
        PortalKind, ReactionRow, Store, StoreError,
    },
};
use support::TestDb;

/// Matrix IDs of the fixtures, parsed as the bridge parses them at its edge.
fn room_id(id: &str) -> OwnedRoomId {
    id.try_into().unwrap()
}

fn event_id(id: &str) -> OwnedEventId {
    id.try_into().unwrap()
}

fn user_id(id: &str) -> OwnedUserId {
    id.try_into().unwrap()
}

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = super::TestDb::sqlite();
                    super::$case(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(db) = super::TestDb::postgres(stringify!($case)).await {
                        super::$case(&db).await;
                    }
                }
            )*
        }
    };
}

store_suite!(
    migrates_fresh_and_reopens,
    refuses_newer_schema,
    slack_inbox_dedupes_and_orders,
    hs_inbox_dedupes,
    logins_roundtrip_and_state,
    portals_insert_once_and_lookup,
    ghosts_upsert,
    messages_and_reactions,
    management_rooms,
    outgoing_is_recorded_before_sending,
    concurrent_first_opens_do_not_race,
    slack_events_stored_in_one_transaction,
    custom_emoji_by_name_and_mxc,
    tokens_are_stored_sealed_and_open_with_their_key_only,
    tokens_stored_before_encryption_are_sealed_at_unlock,
    a_key_rotation_reseals_everything_at_once,
    history_state_per_portal,
);

fn key() -> EncryptionKey {
    EncryptionKey::generate().unwrap()
}

/// The tokens on disk are sealed: a store that was not unlocked cannot read them, the raw
/// columns hold no token, and another key is refused before anything is read.
async fn tokens_are_stored_sealed_and_open_with_their_key_only(db: &TestDb) {
    let locked = db.connect().await;
    assert!(matches!(
        locked.upsert_login(&login("T1", "xoxb-sealed-1")).await,
        Err(StoreError::Locked)
    ));
    let k = key();
    let store = locked.unlock(&k, "k1").await.unwrap();
    store
        .upsert_login(&login("T1", "xoxb-sealed-1"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_login(&"T1".into())
            .await
            .unwrap()
            .unwrap()
            .bot_token
            .expose(),
        "xoxb-sealed-1"
    );
    let raw = db
        .raw_strings("SELECT bot_token || ' ' || app_token FROM logins")
        .await;
    assert_eq!(raw.len(), 1);
    assert!(
        raw[0].starts_with("enc:v1:") && !raw[0].contains("xoxb") && !raw[0].contains("xapp"),
        "{raw:?}"
    );
    assert!(matches!(
        locked.get_login(&"T1".into()).await,
        Err(StoreError::Locked)
    ));
    let e = locked.unlock(&key(), "/etc/other.key").await.unwrap_err();
    assert!(matches!(e, StoreError::WrongKey { .. }), "{e}");
    assert!(e.to_string().contains("/etc/other.key"), "{e}");
    // The same key opens it again, as at every start.
    let again = db.connect().await.unlock(&k, "k1").await.unwrap();
    assert_eq!(again.list_logins().await.unwrap().len(), 1);
    // A sealed token moved to another row does not open there.
    store
        .upsert_login(&login("T2", "xoxb-sealed-2"))
        .await
        .unwrap();
    db.raw_exec(
        "UPDATE logins SET bot_token = (SELECT bot_token FROM logins WHERE team_id = 'T1') WHERE team_id = 'T2'",
    )
    .await;
    assert!(matches!(
        store.get_login(&"T2".into()).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// A database from before encryption: its plain tokens are sealed by the first unlock, and
/// the login reads as it was.
async fn tokens_stored_before_encryption_are_sealed_at_unlock(db: &TestDb) {
    db.connect().await.close().await;
    db.raw_exec(
        "INSERT INTO logins (team_id, team_name, bot_user_id, bot_id, app_id, owner_mxid, bot_token, app_token, state, created_at)
         VALUES ('T9', 'Old', 'UBOT', 'B1', 'A1', '@dan:example.org', 'xoxb-plain-9', 'xapp-plain-9', 'ok', 0)",
    )
    .await;
    let store = db.connect().await;
    assert!(!store.is_sealed().await.unwrap(), "no key used yet");
    let store = store.unlock(&key(), "k").await.unwrap();
    assert!(store.is_sealed().await.unwrap());
    let l = store.get_login(&"T9".into()).await.unwrap().unwrap();
    assert_eq!(
        (l.bot_token.expose(), l.app_token.expose()),
        ("xoxb-plain-9", "xapp-plain-9")
    );
    let raw = db
        .raw_strings("SELECT bot_token || ' ' || app_token FROM logins")
        .await;
    assert!(!raw[0].contains("plain"), "sealed on disk: {raw:?}");
}

/// `rotate_key` re-seals under the new key: the old one is refused afterwards, the new one
/// reads every login.
async fn a_key_rotation_reseals_everything_at_once(db: &TestDb) {
    let (old, new) = (key(), key());
    let store = db.connect().await.unlock(&old, "old").await.unwrap();
    for t in ["T1", "T2", "T3"] {
        store
            .upsert_login(&login(t, &format!("xoxb-{t}")))
            .await
            .unwrap();
    }
    assert!(matches!(
        db.connect().await.rotate_key(&new).await,
        Err(StoreError::Locked)
    ));
    assert_eq!(store.rotate_key(&new).await.unwrap(), 3);
    assert!(matches!(
        db.connect().await.unlock(&old, "old").await,
        Err(StoreError::WrongKey { .. })
    ));
    let reopened = db.connect().await.unlock(&new, "new").await.unwrap();
    let tokens: Vec<String> = reopened
        .list_logins()
        .await
        .unwrap()
        .iter()
        .map(|l| l.bot_token.expose().to_owned())
        .collect();
    assert_eq!(tokens, ["xoxb-T1", "xoxb-T2", "xoxb-T3"]);
}

async fn custom_emoji_by_name_and_mxc(db: &TestDb) {
    let store = db.connect().await;
    let mut e = slack_bridge::store::CustomEmoji {
        team_id: "T1".into(),
        name: "blobcat".into(),
        source: "https://emoji.example/blobcat.png".into(),
        mxc: "mxc://hs/one".into(),
    };
    assert_eq!(
        store
            .get_custom_emoji(&"T1".into(), "blobcat")
            .await
            .unwrap(),
        None
    );
    store.upsert_custom_emoji(&e).await.unwrap();
    assert_eq!(
        store
            .get_custom_emoji(&"T1".into(), "blobcat")
            .await
            .unwrap()
            .as_ref(),
        Some(&e)
    );
    // A new image replaces the old one.
    e.source = "https://emoji.example/blobcat-2.png".into();
    e.mxc = "mxc://hs/two".into();
    store.upsert_custom_emoji(&e).await.unwrap();
    assert_eq!(
        store
            .get_custom_emoji_by_mxc(&"T1".into(), "mxc://hs/two")
            .await
            .unwrap()
            .as_ref(),
        Some(&e)
    );
    assert_eq!(
        store
            .get_custom_emoji_by_mxc(&"T1".into(), "mxc://hs/one")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_custom_emoji_by_mxc(&"T2".into(), "mxc://hs/two")
            .await
            .unwrap(),
        None
    );
}

async fn migrates_fresh_and_reopens(db: &TestDb) {
    let store = db.connect().await;
    let known = store.known_version();
    assert!(known >= 1);
    assert_eq!(store.schema_version().await.unwrap(), known);
    store.ping().await.unwrap();
    store.close().await;
    // A second start applies nothing and keeps the data.
    let store = db.connect().await;
    assert_eq!(store.schema_version().await.unwrap(), known);
}

async fn refuses_newer_schema(db: &TestDb) {
    let store = db.connect().await;
    let known = store.known_version();
    // Pretend a newer release migrated this database.
    let future = known + 1;
    let sql = format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({future}, 'from the future', TRUE, X'00', 0)"
    );
    let sql = if store.dialect() == slack_bridge::store::Dialect::Postgres {
        sql.replace("X'00'", "'\\x00'::bytea")
    } else {
        sql
    };
    raw_execute(db, &sql).await;
    store.close().await;
    let err = Store::connect(&db.uri, 2).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { db, known: k } if db == future && k == known),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("version {future}")) && msg.contains(&format!("({known})")),
        "{msg}"
    );
}

async fn raw_execute(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    if db.uri.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&db.uri).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&db.uri).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

async fn slack_inbox_dedupes_and_orders(db: &TestDb) {
    let store = db.connect().await;
    assert!(
        store
            .insert_slack_event("Ev1", &"T1".into(), Some(&"C1".into()), r#"{"a":1}"#)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_slack_event("Ev1", &"T1".into(), Some(&"C1".into()), r#"{"a":1}"#)
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_slack_event("Ev2", &"T1".into(), None, r#"{"a":2}"#)
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_slack_event("Ev3", &"T1".into(), Some(&"C2".into()), r#"{"a":3}"#)
            .await
            .unwrap()
    );
    assert_eq!(store.slack_event_count("Ev1").await.unwrap(), 1);
    let pending = store.pending_slack_events(0, 10).await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["Ev1", "Ev2", "Ev3"]);
    assert_eq!(pending[1].channel_id, None);
    store.mark_slack_done(pending[0].id).await.unwrap();
    store
        .note_slack_attempt(pending[1].id, "homeserver down")
        .await
        .unwrap();
    store
        .mark_slack_failed(pending[2].id, "unsupported")
        .await
        .unwrap();
    let pending = store.pending_slack_events(0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event_id, "Ev2");
    assert_eq!(pending[0].attempts, 1);
    // Paging past an id.
    assert!(
        store
            .pending_slack_events(pending[0].id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Survives a reopen.
    store.close().await;
    let store = db.connect().await;
    assert_eq!(store.pending_slack_events(0, 10).await.unwrap().len(), 1);
}

async fn hs_inbox_dedupes(db: &TestDb) {
    let store = db.connect().await;
    assert!(store.insert_hs_txn("42", r#"{"events":[]}"#).await.unwrap());
    assert!(
        !store
            .insert_hs_txn("42", r#"{"events":[1]}"#)
            .await
            .unwrap()
    );
    assert!(store.insert_hs_txn("43", r#"{"events":[]}"#).await.unwrap());
    let pending = store.pending_hs_txns(0, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(
        pending[0].body, r#"{"events":[]}"#,
        "the first body is kept"
    );
    store.mark_hs_done(pending[0].id).await.unwrap();
    store
        .note_hs_attempt(pending[1].id, "slack down")
        .await
        .unwrap();
    let pending = store.pending_hs_txns(0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].txn_id.as_str(), pending[0].attempts), ("43", 1));
}

fn login(team: &str, bot: &str) -> Login {
    Login {
        team_id: team.into(),
        team_name: "Acme".into(),
        bot_user_id: "UBOT".into(),
        bot_id: "B1".into(),
        app_id: "A1".into(),
        owner_mxid: user_id("@dan:example.org"),
        bot_token: Secret::new(bot),
        app_token: Secret::new("xapp-1"),
        state: LoginState::Ok,
        state_reason: None,
        space_room_id: None,
    }
}

async fn logins_roundtrip_and_state(db: &TestDb) {
    let store = db.connect().await.unlock(&key(), "k").await.unwrap();
    store.upsert_login(&login("T1", "xoxb-1")).await.unwrap();
    store.upsert_login(&login("T2", "xoxb-2")).await.unwrap();
    store
        .set_login_state(&"T1".into(), LoginState::Invalid, Some("token_revoked"))
        .await
        .unwrap();
    let l = store.get_login(&"T1".into()).await.unwrap().unwrap();
    assert_eq!(
        (l.state, l.state_reason.as_deref()),
        (LoginState::Invalid, Some("token_revoked"))
    );
    // Logging in again replaces the tokens and revives the login.
    store.upsert_login(&login("T1", "xoxb-new")).await.unwrap();
    let l = store.get_login(&"T1".into()).await.unwrap().unwrap();
    assert_eq!(l.bot_token.expose(), "xoxb-new");
    assert_eq!(l.state, LoginState::Ok);
    assert_eq!(
        format!("{l:?}").matches("xoxb").count(),
        0,
        "tokens are redacted in Debug"
    );
    store
        .set_login_space(&"T1".into(), &room_id("!space:x"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_login(&"T1".into())
            .await
            .unwrap()
            .unwrap()
            .space_room_id
            .as_deref()
            .map(|id| id.as_str()),
        Some("!space:x")
    );
    assert_eq!(store.list_logins().await.unwrap().len(), 2);
    assert!(store.delete_login(&"T2".into()).await.unwrap());
    assert!(store.get_login(&"T2".into()).await.unwrap().is_none());
}

async fn portals_insert_once_and_lookup(db: &TestDb) {
    let store = db.connect().await;
    let mut p = Portal {
        team_id: "T1".into(),
        channel_id: "C1".into(),
        kind: PortalKind::Channel,
        room_id: None,
        name: "general".into(),
        topic: "chat".into(),
        dm_user_id: None,
    };
    assert!(store.insert_portal(&p).await.unwrap());
    p.name = "other".into();
    assert!(
        !store.insert_portal(&p).await.unwrap(),
        "a portal is created once"
    );
    store
        .set_portal_room(&"T1".into(), &"C1".into(), &room_id("!room1:x"))
        .await
        .unwrap();
    store
        .set_portal_meta(&"T1".into(), &"C1".into(), "renamed", "new topic")
        .await
        .unwrap();
    let got = store
        .get_portal_by_room(&room_id("!room1:x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.name.as_str(), got.topic.as_str(), got.kind),
        ("renamed", "new topic", PortalKind::Channel)
    );
    let dm = Portal {
        channel_id: "D1".into(),
        kind: PortalKind::Im,
        dm_user_id: Some("U2".into()),
        ..p.clone()
    };
    store.insert_portal(&dm).await.unwrap();
    let all = store.list_portals(&"T1".into()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        store
            .get_portal(&"T1".into(), &"D1".into())
            .await
            .unwrap()
            .unwrap()
            .dm_user_id
            .as_deref(),
        Some("U2")
    );
    assert!(
        store
            .get_portal(&"T9".into(), &"C1".into())
            .await
            .unwrap()
            .is_none()
    );
}

async fn ghosts_upsert(db: &TestDb) {
    let store = db.connect().await;
    let mut g = Ghost {
        team_id: "T1".into(),
        user_id: "U1".into(),
        mxid: user_id("@slack_t1-u1:example.org"),
        display_name: "Alice".into(),
        avatar_source: String::new(),
        avatar_mxc: String::new(),
        is_bot: 0,
        registered: 1,
    };
    store.upsert_ghost(&g).await.unwrap();
    g.display_name = "Alice B".into();
    g.avatar_mxc = "mxc://x/y".into();
    store.upsert_ghost(&g).await.unwrap();
    assert_eq!(
        store
            .get_ghost(&"T1".into(), &"U1".into())
            .await
            .unwrap()
            .unwrap(),
        g
    );
    assert_eq!(store.get_ghost_by_mxid(&g.mxid).await.unwrap().unwrap(), g);
}

async fn messages_and_reactions(db: &TestDb) {
    let store = db.connect().await;
    let m = |part: i64, event: &str| MessageRow {
        team_id: "T1".into(),
        channel_id: "C1".into(),
        ts: "1700000000.000100".into(),
        part,
        event_id: event_id(event),
        room_id: room_id("!r:x"),
        thread_ts: None,
        sender: "U1".into(),
        file_id: None,
        edit_ts: None,
        deleted: 0,
    };
    assert!(store.insert_message(&m(1, "$b")).await.unwrap());
    assert!(store.insert_message(&m(0, "$a")).await.unwrap());
    assert!(
        !store.insert_message(&m(0, "$a")).await.unwrap(),
        "idempotent"
    );
    let parts = store
        .get_message(&"T1".into(), &"C1".into(), &"1700000000.000100".into())
        .await
        .unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| p.event_id.as_str())
            .collect::<Vec<_>>(),
        ["$a", "$b"]
    );
    assert_eq!(
        store
            .get_message_by_event(&event_id("$b"))
            .await
            .unwrap()
            .unwrap()
            .part,
        1
    );
    let r = ReactionRow {
        team_id: "T1".into(),
        channel_id: "C1".into(),
        msg_ts: "1700000000.000100".into(),
        user_id: "U2".into(),
        emoji: "thumbsup".into(),
        event_id: event_id("$react"),
        room_id: room_id("!r:x"),
        made_as: None,
    };
    assert!(store.insert_reaction(&r).await.unwrap());
    assert!(!store.insert_reaction(&r).await.unwrap());
    assert_eq!(
        store
            .get_reaction(
                &"T1".into(),
                &"C1".into(),
                &"1700000000.000100".into(),
                "U2",
                "thumbsup"
            )
            .await
            .unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        store
            .reactions_of(
                &"T1".into(),
                &"C1".into(),
                &"1700000000.000100".into(),
                "U2"
            )
            .await
            .unwrap(),
        std::slice::from_ref(&r)
    );
    assert_eq!(
        store
            .get_reaction_by_event(&event_id("$react"))
            .await
            .unwrap()
            .as_ref(),
        Some(&r)
    );
    assert_eq!(
        store
            .reactions_with(
                &"T1".into(),
                &"C1".into(),
                &"1700000000.000100".into(),
                "thumbsup"
            )
            .await
            .unwrap(),
        std::slice::from_ref(&r)
    );
    // A Matrix user's reaction, made as their linked Slack account once Slack said so.
    let mine = ReactionRow {
        user_id: "@a:x".into(),
        event_id: event_id("$mine"),
        ..r.clone()
    };
    assert!(store.insert_reaction(&mine).await.unwrap());
    store
        .set_reaction_made_as(&event_id("$mine"), Some(&"U9".into()))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_reaction_by_event(&event_id("$mine"))
            .await
            .unwrap()
            .unwrap()
            .made_as
            .as_deref(),
        Some("U9")
    );
    assert!(store.delete_reaction(&event_id("$mine")).await.unwrap());
    assert!(store.delete_reaction(&event_id("$react")).await.unwrap());

    // Edits and deletes are recorded on every part.
    store
        .set_message_edit_ts(
            &"T1".into(),
            &"C1".into(),
            &"1700000000.000100".into(),
            &"1700000005.000001".into(),
        )
        .await
        .unwrap();
    let ts = "1700000000.000100";
    assert_eq!(
        store
            .mark_message_deleted(&"T1".into(), &"C1".into(), &ts.into())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .mark_message_deleted(&"T1".into(), &"C1".into(), &ts.into())
            .await
            .unwrap(),
        0,
        "deleting twice changes nothing"
    );
    let parts = store
        .get_message(&"T1".into(), &"C1".into(), &ts.into())
        .await
        .unwrap();
    assert!(
        parts
            .iter()
            .all(|p| p.is_deleted() && p.edit_ts.as_deref() == Some("1700000005.000001"))
    );

    // The newest reply of a thread, by Slack time (not string order).
    let reply = |ts: &str, event: &str| MessageRow {
        ts: ts.into(),
        thread_ts: Some("9.000001".into()),
        event_id: event_id(event),
        ..m(0, "$base")
    };
    store
        .insert_message(&MessageRow {
            ts: "9.000001".into(),
            thread_ts: Some("9.000001".into()),
            ..m(0, "$root")
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_in_thread(&"T1".into(), &"C1".into(), &"9.000001".into())
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "$root"
    );
    store.insert_message(&reply("9.5", "$r1")).await.unwrap();
    store
        .insert_message(&reply("10.000002", "$r2"))
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_in_thread(&"T1".into(), &"C1".into(), &"9.000001".into())
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "$r2"
    );
    assert_eq!(
        store
            .delete_message(&"T1".into(), &"C1".into(), &"1700000000.000100".into())
            .await
            .unwrap(),
        2
    );
}

async fn management_rooms(db: &TestDb) {
    let store = db.connect().await;
    store
        .set_management_room(&user_id("@dan:x"), &room_id("!m1:x"))
        .await
        .unwrap();
    store
        .set_management_room(&user_id("@dan:x"), &room_id("!m2:x"))
        .await
        .unwrap();
    // A room another user re-invites the bot to becomes theirs, without a constraint error.
    store
        .set_management_room(&user_id("@eve:x"), &room_id("!m1:x"))
        .await
        .unwrap();
    assert_eq!(
        store
            .management_room_owner(&room_id("!m1:x"))
            .await
            .unwrap()
            .as_deref()
            .map(|id| id.as_str()),
        Some("@eve:x")
    );
    store
        .set_management_room(&user_id("@eve:x"), &room_id("!m2:x"))
        .await
        .unwrap();
    assert_eq!(
        store.management_room_of(&user_id("@dan:x")).await.unwrap(),
        None
    );
    store
        .set_management_room(&user_id("@dan:x"), &room_id("!m2:x"))
        .await
        .unwrap();
    assert_eq!(
        store
            .management_room_of(&user_id("@dan:x"))
            .await
            .unwrap()
            .as_deref()
            .map(|id| id.as_str()),
        Some("!m2:x")
    );
    assert_eq!(
        store
            .management_room_owner(&room_id("!m2:x"))
            .await
            .unwrap()
            .as_deref()
            .map(|id| id.as_str()),
        Some("@dan:x")
    );
    assert_eq!(
        store
            .management_room_owner(&room_id("!m1:x"))
            .await
            .unwrap(),
        None
    );
}

async fn outgoing_is_recorded_before_sending(db: &TestDb) {
    let store = db.connect().await;
    assert_eq!(
        store
            .begin_outgoing(
                &event_id("$e1"),
                &room_id("!r:x"),
                &"T1".into(),
                &"C1".into()
            )
            .await
            .unwrap(),
        Outgoing::New
    );
    // A redelivered transaction finds it pending (sent state unknown).
    assert_eq!(
        store
            .begin_outgoing(
                &event_id("$e1"),
                &room_id("!r:x"),
                &"T1".into(),
                &"C1".into()
            )
            .await
            .unwrap(),
        Outgoing::Pending
    );
    store
        .finish_outgoing(&event_id("$e1"), &"1700000000.000200".into())
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_outgoing(
                &event_id("$e1"),
                &room_id("!r:x"),
                &"T1".into(),
                &"C1".into()
            )
            .await
            .unwrap(),
        Outgoing::Sent("1700000000.000200".into())
    );
    assert!(
        store
            .is_outgoing_ts(&"T1".into(), &"C1".into(), &"1700000000.000200".into())
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_outgoing_ts(&"T1".into(), &"C1".into(), &"1700000000.000300".into())
            .await
            .unwrap()
    );
    store
        .begin_outgoing(
            &event_id("$e2"),
            &room_id("!r:x"),
            &"T1".into(),
            &"C1".into(),
        )
        .await
        .unwrap();
    store
        .fail_outgoing(&event_id("$e2"), "not_in_channel")
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_outgoing(
                &event_id("$e2"),
                &room_id("!r:x"),
                &"T1".into(),
                &"C1".into()
            )
            .await
            .unwrap(),
        Outgoing::Failed
    );
}

/// Two processes starting on a fresh database (the bridge and `doctor`, say) both migrate it.
async fn concurrent_first_opens_do_not_race(db: &TestDb) {
    let opens = (0..4).map(|_| Store::connect(&db.uri, 2));
    for r in futures_util::future::join_all(opens).await {
        let store = r.expect("every concurrent open succeeds");
        assert_eq!(store.schema_version().await.unwrap(), store.known_version());
    }
}

async fn slack_events_stored_in_one_transaction(db: &TestDb) {
    let store = db.connect().await;
    assert!(
        store
            .insert_slack_event("Ev1", &"T1".into(), Some(&"C1".into()), "{}")
            .await
            .unwrap()
    );
    let (team, channel) = (TeamId::from("T1"), ChannelId::from("C1"));
    let ev = |id: &'static str| NewSlackEvent {
        event_id: id,
        team_id: &team,
        channel_id: Some(&channel),
        payload: "{}",
    };
    let new = store
        .insert_slack_events(&[ev("Ev0"), ev("Ev1"), ev("Ev2"), ev("Ev2")])
        .await
        .unwrap();
    assert_eq!(
        new,
        [true, false, true, false],
        "known and repeated ids are not new"
    );
    let ids: Vec<String> = store
        .pending_slack_events(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["Ev1", "Ev0", "Ev2"], "stored in arrival order");
}

/// A fresh SQLite file opened by several at once (the bridge starting while a test or
/// `doctor` keeps opening it): the first open turns the file to WAL, which fails at once
/// instead of waiting when another connection is there; every open must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_sqlite_file_opened_by_many_at_once() {
    for _ in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("sqlite://{}/bridge.db", dir.path().display());
        let other = uri.clone();
        let poller = tokio::spawn(async move {
            for _ in 0..20 {
                let store = Store::connect(&other, 1).await.map_err(|e| e.to_string())?;
                store
                    .get_portal(&"T1".into(), &"C1".into())
                    .await
                    .map_err(|e| e.to_string())?;
                store.close().await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Ok::<_, String>(())
        });
        let store = Store::connect(&uri, 5)
            .await
            .expect("the open beside another succeeds");
        assert_eq!(store.schema_version().await.unwrap(), store.known_version());
        poller.await.unwrap().expect("the other opens succeed");
    }
}

/// A portal's history state: recorded once, the backfill's bound fixed, progress and the
/// catch-up point kept; the newest bridged message and the recently active threads found.
async fn history_state_per_portal(db: &TestDb) {
    let store = db.connect().await;
    assert!(
        store
            .get_backfill(&"T1".into(), &"C1".into())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .insert_backfill(&"T1".into(), &"C1".into(), true, &"100.000000".into())
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_backfill(&"T1".into(), &"C1".into(), false, &"200.000000".into())
            .await
            .unwrap(),
        "recorded once"
    );
    assert!(
        store
            .insert_backfill(&"T1".into(), &"C2".into(), false, &"100.000000".into())
            .await
            .unwrap()
    );
    let pending = store.pending_backfills(&"T1".into()).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].channel_id, "C1");
    store
        .set_backfill_until(&"T1".into(), &"C1".into(), &"150.000001".into())
        .await
        .unwrap();
    store
        .set_history_progress(&"T1".into(), &"C1".into(), HistoryRun::Backfill, 20, 50)
        .await
        .unwrap();
    let b = store
        .get_backfill(&"T1".into(), &"C1".into())
        .await
        .unwrap()
        .unwrap();
    assert!(b.initial_pending());
    assert_eq!(b.until_ts.as_deref(), Some("150.000001"));
    assert_eq!(
        (b.run.as_str(), b.run_done, b.run_total),
        ("backfill", 20, 50)
    );
    store
        .finish_history_run(&"T1".into(), &"C1".into(), 50, 50, 48, &"150.000001".into())
        .await
        .unwrap();
    // A run that saw nothing keeps the catch-up point.
    store
        .finish_history_run(&"T1".into(), &"C1".into(), 0, 0, 0, &"".into())
        .await
        .unwrap();
    let b = store
        .get_backfill(&"T1".into(), &"C1".into())
        .await
        .unwrap()
        .unwrap();
    assert!(!b.initial_pending());
    assert_eq!(b.caught_up_ts.as_deref(), Some("150.000001"));
    assert_eq!(b.bridged, 48);
    assert!(
        store
            .pending_backfills(&"T1".into())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_backfills(&"T1".into()).await.unwrap().len(), 2);

    assert_eq!(
        store
            .newest_message_ts(&"T1".into(), &"C1".into())
            .await
            .unwrap(),
        None
    );
    let row = |ts: &str, thread: Option<&str>, event: &str| MessageRow {
        team_id: "T1".into(),
        channel_id: "C1".into(),
        ts: ts.into(),
        event_id: event_id(event),
        room_id: room_id("!r:x"),
        thread_ts: thread.map(Into::into),
        part: 0,
        sender: "U1".into(),
        file_id: None,
        edit_ts: None,
        deleted: 0,
    };
    for m in [
        row("1700000000.000100", Some("1700000000.000100"), "$a"),
        row("1700000000.000200", Some("1700000000.000100"), "$b"),
        row("1700000000.000300", None, "$c"),
        row("1700000000.000400", Some("1700000000.000300"), "$d"),
    ] {
        store.insert_message(&m).await.unwrap();
    }
    assert_eq!(
        store
            .newest_message_ts(&"T1".into(), &"C1".into())
            .await
            .unwrap()
            .as_deref(),
        Some("1700000000.000400")
    );
    assert_eq!(
        store
            .recent_top_level(&"T1".into(), &"C1".into(), 2)
            .await
            .unwrap(),
        vec![Ts::from("1700000000.000300"), Ts::from("1700000000.000100")],
        "thread replies are not top-level"
    );
    assert_eq!(
        store
            .recent_threads(&"T1".into(), &"C1".into(), 5)
            .await
            .unwrap(),
        vec![
            ("1700000000.000300".into(), "1700000000.000400".into()),
            ("1700000000.000100".into(), "1700000000.000200".into()),
        ]
    );
}
