//! Puppeting, as a Matrix user meets it: linking their own Slack account with `login-user`
//! (Slack's OAuth approval and the code pasted back, or a pasted user token), posting as that
//! account, and what happens when Slack revokes it — the Slack emulator, a real homeserver and the bridge, on
//! SQLite and PostgreSQL (`synapse::sqlite::…`, `tuwunel::postgres::…`).

mod support;

use serde_json::{Value, json};
use slack_emulator::Workspace;
use support::{
    TestDb,
    bridge::EnvOptions,
    world::{WAIT, World, body, management_room_of, poll, world_with_env},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    a_slack_account_links_through_oauth,
    a_pasted_user_token_links_until_slack_revokes_it,
    a_linked_user_posts_as_themselves,
    a_linked_user_reacts_shares_and_is_mentioned_as_themselves,
    a_linked_users_slack_side_comes_from_their_matrix_account,
);

const REDIRECT: &str = "https://bridge.example.org/slack-approved";

/// The demo workspace with the app's OAuth credentials in the bridge config; the bridge's
/// owner `@dan` will link the Slack user `dave`.
async fn setup(hs: HomeserverKind, db: Option<TestDb>, oauth: bool) -> World {
    setup_with(hs, db, oauth, false).await
}

/// [`setup`], with the double-puppet appservice registered and its secret configured.
async fn setup_with(
    hs: HomeserverKind,
    db: Option<TestDb>,
    oauth: bool,
    double_puppet: bool,
) -> World {
    let opts = EnvOptions {
        homeserver: hs,
        double_puppet,
        ..EnvOptions::default()
    };
    let w = world_with_env(Workspace::demo(), db, true, opts).await;
    if oauth {
        let (id, secret) = w.emu.oauth_client();
        w.env.edit_config(
            "    client_id: \"\"",
            &format!("    client_id: \"{id}\"\n    client_secret: \"{secret}\""),
        );
        w.env.edit_config(
            "    redirect_url: \"\"",
            &format!("    redirect_url: \"{REDIRECT}\""),
        );
    }
    w
}

/// Sends `text` in the owner's management room; the bot's answer.
async fn ask(w: &World, dm: &str, text: &str) -> (String, String) {
    let sent = w.owner.send_text(dm, text).await.unwrap();
    let answer = support::world::wait_after(&w.owner, dm, &sent, |e| {
        e["sender"] == support::world::bot().as_str() && e["content"]["msgtype"] == "m.notice"
    })
    .await
    .unwrap_or_else(|| panic!("the bot never answered `{text}`"));
    (sent, body(&answer).to_owned())
}

/// The query parameters of the first URL in `text`.
fn url_params(text: &str) -> Vec<(String, String)> {
    let start = text.find("http").expect("a URL in the answer");
    let raw = text[start..].split_whitespace().next().unwrap();
    url::Url::parse(raw)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn user_login_state(w: &World) -> Option<(String, String)> {
    let store = w.store().await?;
    let owner = ruma::OwnedUserId::try_from(w.owner.user_id()).unwrap();
    let l = store
        .get_user_login(&owner, &w.emu.team_id().into())
        .await
        .unwrap();
    store.close().await;
    l.map(|l| (l.slack_user_id.to_string(), format!("{:?}", l.state)))
}

/// `login-user` shows Slack's approval page for the app with the user scopes and the
/// configured redirect; the code Slack puts in the redirect address links the account (the
/// message is redacted, the token sealed at rest), and works once.
async fn a_slack_account_links_through_oauth(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db, true).await;
    let bridge = w.env.run_bridge_full().await;
    let dm = management_room_of(&w.owner).await;

    let (_, how) = ask(&w, &dm, "login-user").await;
    let params = url_params(&how);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in the authorize URL of {how:?}"))
    };
    let (client_id, _) = w.emu.oauth_client();
    assert_eq!(get("client_id"), client_id);
    assert_eq!(get("redirect_uri"), REDIRECT);
    let scopes: Vec<String> = get("user_scope").split(',').map(str::to_owned).collect();
    for needed in [
        "chat:write",
        "reactions:write",
        "files:write",
        "channels:history",
    ] {
        assert!(scopes.iter().any(|s| s == needed), "{needed} in {scopes:?}");
    }

    // Dave approves; Slack sends his browser to the redirect address with the code.
    let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let code = w.emu.authorize_user("dave", &scope_refs, REDIRECT);
    let address = format!("{REDIRECT}?code={code}&state=");
    let (sent, answer) = ask(&w, &dm, &format!("login-user {address}")).await;
    let dave = w.emu.user_id("dave").unwrap();
    assert!(
        answer.contains("Linked your Slack account") && answer.contains(&dave),
        "{answer}"
    );
    let exchange = w.emu.calls("oauth.v2.access");
    assert_eq!(exchange.len(), 1);
    assert_eq!(exchange[0].param("code").as_deref(), Some(code.as_str()));
    assert_eq!(exchange[0].param("redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(
        w.owner.event(&dm, &sent).await.unwrap()["content"],
        json!({}),
        "the message with the code is redacted"
    );
    assert_eq!(
        user_login_state(&w).await,
        Some((dave.clone(), "Ok".to_owned()))
    );
    let token = exchange[0].response["authed_user"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = w.env.config().database.uri().to_owned();
    assert_eq!(
        support::places_holding(&uri, &token).await,
        Vec::<String>::new(),
        "where the user token is readable in the database"
    );

    // A code works once.
    let (_, again) = ask(&w, &dm, &format!("login-user {code}")).await;
    assert!(
        again.contains("Slack did not accept the code") && again.contains("invalid_code"),
        "{again}"
    );
    assert_eq!(user_login_state(&w).await, Some((dave, "Ok".to_owned())));
    bridge.stop().await.unwrap();
}

/// Without OAuth credentials, `login-user` says how to paste a token; a bad or a bot token is
/// refused with the reason, a user token links. When Slack revokes it, the user is told in
/// their management room and the link stops, while the workspace's login goes on.
async fn a_pasted_user_token_links_until_slack_revokes_it(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db, false).await;
    let bridge = w.env.run_bridge_full().await;
    let dm = management_room_of(&w.owner).await;

    let (_, how) = ask(&w, &dm, "login-user").await;
    assert!(how.contains("login-user xoxp-"), "{how}");
    let (_, bad) = ask(&w, &dm, "login-user xoxp-not-a-token").await;
    assert!(
        bad.contains("Slack refused the user token") && bad.contains("invalid_auth"),
        "{bad}"
    );
    let (_, bot) = ask(&w, &dm, &format!("login-user {}", w.emu.bot_token())).await;
    assert!(bot.contains("not a user token"), "{bot}");
    assert_eq!(user_login_state(&w).await, None);

    let token = w
        .emu
        .user_token("dave", &["chat:write", "reactions:write", "files:write"]);
    let (sent, linked) = ask(&w, &dm, &format!("login-user {token}")).await;
    assert!(linked.contains("Linked your Slack account"), "{linked}");
    assert!(
        linked.contains("Not granted"),
        "the missing history scopes are named: {linked}"
    );
    assert_eq!(
        w.owner.event(&dm, &sent).await.unwrap()["content"],
        json!({}),
        "the message with the token is redacted"
    );
    let dave = w.emu.user_id("dave").unwrap();
    assert_eq!(
        user_login_state(&w).await,
        Some((dave.clone(), "Ok".into()))
    );

    w.emu.revoke_user_token("dave");
    let told = w
        .owner
        .wait_for_event(
            &dm,
            |e: &Value| body(e).contains("Slack revoked the token"),
            WAIT,
        )
        .await
        .expect("the owner is told about the revoked token");
    assert!(body(&told).contains("login-user"));
    assert_eq!(user_login_state(&w).await, Some((dave, "Invalid".into())));
    // The workspace's own login is untouched: Slack messages still arrive.
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();
    w.emu
        .post_message(&alice, &general, "still bridged after the revocation")
        .unwrap();
    w.owner
        .wait_for_text(&room, "still bridged after the revocation", WAIT)
        .await
        .unwrap();

    let (_, out) = ask(&w, &dm, "logout-user").await;
    assert!(out.contains("Unlinked 1"), "{out}");
    poll("the link to be gone", WAIT, async || {
        user_login_state(&w).await.is_none().then_some(())
    })
    .await;
    bridge.stop().await.unwrap();
}

/// A linked user's Matrix message reaches chat.postMessage with their user token and no
/// name override, and shows on Slack as theirs; its echo is not bridged back. Where their
/// account is not a member, and once Slack revoked the token, the relay posts instead.
async fn a_linked_user_posts_as_themselves(hs: HomeserverKind, db: Option<TestDb>) {
    let w = setup(hs, db, false).await;
    let bridge = w.env.run_bridge_full().await;
    let dm = management_room_of(&w.owner).await;
    let token = w.emu.user_token("dave", &["chat:write"]);
    let (_, linked) = ask(&w, &dm, &format!("login-user {token}")).await;
    assert!(linked.contains("Linked your Slack account"), "{linked}");
    let dave = w.emu.user_id("dave").unwrap();
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;

    w.owner.send_text(&room, "hello as myself").await.unwrap();
    let call = w.wait_for_post("hello as myself").await;
    assert_eq!(call.token_kind, slack_emulator::TokenKind::User);
    assert_eq!(call.token_user.as_deref(), Some(dave.as_str()));
    assert_eq!(call.param("username"), None, "no name override as oneself");
    let on_slack = w
        .emu
        .messages(&general)
        .into_iter()
        .find(|m| m["text"] == "hello as myself")
        .unwrap();
    assert_eq!(on_slack["user"], dave.as_str());
    assert!(on_slack.get("bot_id").is_none(), "{on_slack}");
    // The echo came over Socket Mode as Dave's message; a sentinel after it shows it was
    // handled, and nothing of it reached the room.
    let alice = w.emu.user_id("alice").unwrap();
    w.emu
        .post_message(&alice, &general, "after the echo")
        .unwrap();
    w.owner
        .wait_for_text(&room, "after the echo", WAIT)
        .await
        .unwrap();
    let events = w.owner.messages(&room, 100).await.unwrap();
    let copies: Vec<&Value> = events
        .iter()
        .filter(|e| body(e) == "hello as myself")
        .collect();
    assert_eq!(copies.len(), 1, "one copy, the owner's own: {copies:#?}");
    assert_eq!(copies[0]["sender"], w.owner.user_id());

    // Edited and then redacted in Matrix: changed and deleted on Slack with Dave's token (the
    // bot may not touch his message).
    let ts = on_slack["ts"].as_str().unwrap().to_owned();
    let original = copies[0]["event_id"].as_str().unwrap().to_owned();
    edit_in_matrix(&w, &room, &original, "hello, edited").await;
    poll("the edit on Slack", WAIT, async || {
        (w.emu.message(&general, &ts)?["text"] == "hello, edited").then_some(())
    })
    .await;
    let update = w.emu.calls("chat.update").pop().unwrap();
    assert_eq!(update.token_user.as_deref(), Some(dave.as_str()));
    w.owner.redact(&room, &original, None).await.unwrap();
    poll("the delete on Slack", WAIT, async || {
        w.emu.message(&general, &ts).is_none().then_some(())
    })
    .await;
    let delete = w.emu.calls("chat.delete").pop().unwrap();
    assert_eq!(delete.token_user.as_deref(), Some(dave.as_str()));

    // #random has no Dave: the relay posts there, under the owner's name.
    let random = w.emu.channel_id("random").unwrap();
    let random_room = w.joined_room_of(&random).await;
    w.owner
        .send_text(&random_room, "where dave is not")
        .await
        .unwrap();
    let attempts = poll("the relayed post", WAIT, async || {
        let calls: Vec<_> = w
            .emu
            .calls("chat.postMessage")
            .into_iter()
            .filter(|c| c.param("text").as_deref() == Some("where dave is not"))
            .collect();
        (calls.len() == 2).then_some(calls)
    })
    .await;
    assert_eq!(attempts[0].token_kind, slack_emulator::TokenKind::User);
    assert_eq!(attempts[0].response["error"], "not_in_channel");
    assert_eq!(attempts[1].token_kind, slack_emulator::TokenKind::Bot);
    assert!(attempts[1].param("username").is_some());

    // Revoked on Slack: told, and the next message goes through the relay.
    w.emu.revoke_user_token("dave");
    w.owner
        .wait_for_event(
            &dm,
            |e: &Value| body(e).contains("Slack revoked the token"),
            WAIT,
        )
        .await
        .expect("the owner is told about the revoked token");
    w.owner
        .send_text(&room, "after the revocation")
        .await
        .unwrap();
    let after = w.wait_for_post("after the revocation").await;
    assert_eq!(after.token_kind, slack_emulator::TokenKind::Bot);
    assert!(after.param("username").is_some());
    bridge.stop().await.unwrap();
}

/// The owner edits `event` in Matrix to `text`.
async fn edit_in_matrix(w: &World, room: &str, event: &str, text: &str) {
    w.owner
        .send_event(
            room,
            "m.room.message",
            &json!({
                "msgtype": "m.text",
                "body": format!("* {text}"),
                "m.new_content": {"msgtype": "m.text", "body": text},
                "m.relates_to": {"rel_type": "m.replace", "event_id": event},
            }),
        )
        .await
        .unwrap();
}

/// Links the owner to the Slack user `dave` with a pasted user token.
async fn link_dave(w: &World, dm: &str) -> String {
    let token = w
        .emu
        .user_token("dave", &["chat:write", "reactions:write", "files:write"]);
    let (_, linked) = ask(w, dm, &format!("login-user {token}")).await;
    assert!(linked.contains("Linked your Slack account"), "{linked}");
    w.emu.user_id("dave").unwrap().to_string()
}

/// Waits for Alice's `text` in the room after posting it: what the bridge handled before it
/// is in the room by then.
async fn sentinel(w: &World, channel: &str, room: &str, text: &str) {
    let alice = w.emu.user_id("alice").unwrap();
    w.emu.post_message(&alice, channel, text).unwrap();
    w.owner.wait_for_text(room, text, WAIT).await.unwrap();
}

/// Without double puppeting: a linked user's Matrix reaction is theirs on Slack
/// (reactions.add/remove with their token) and their file is shared by them with its caption
/// alone; neither echo comes back. Their own Slack messages still come from their ghost, and
/// mentions of them resolve to the person both ways.
async fn a_linked_user_reacts_shares_and_is_mentioned_as_themselves(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let w = setup(hs, db, false).await;
    let bridge = w.env.run_bridge_full().await;
    let dm = management_room_of(&w.owner).await;
    let dave = link_dave(&w, &dm).await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let alice = w.emu.user_id("alice").unwrap();

    // Alice mentions Dave on Slack: the pill is the owner's own account.
    let ts = w
        .emu
        .post_message(&alice, &general, &format!("lunch, <@{dave}>?"))
        .unwrap();
    let lunch = w
        .owner
        .wait_for_event(&room, |e: &Value| body(e).starts_with("lunch, "), WAIT)
        .await
        .unwrap();
    assert!(
        body(&lunch).to_lowercase().contains("dave") && !body(&lunch).contains(&dave),
        "named as on Slack: {lunch}"
    );
    assert_eq!(
        lunch["content"]["m.mentions"]["user_ids"],
        json!([w.owner.user_id()]),
        "{lunch}"
    );
    let html = lunch["content"]["formatted_body"]
        .as_str()
        .unwrap_or_default();
    assert!(
        html.contains(&format!("https://matrix.to/#/{}", w.owner.user_id())),
        "{html}"
    );

    // The owner reacts in Matrix: Dave's reaction on Slack.
    let lunch_id = lunch["event_id"].as_str().unwrap();
    let reaction = w
        .owner
        .send_event(
            &room,
            "m.reaction",
            &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": lunch_id, "key": "👍"}}),
        )
        .await
        .unwrap();
    let add = poll("reactions.add", WAIT, async || {
        w.emu.calls("reactions.add").pop()
    })
    .await;
    assert_eq!(add.token_user.as_deref(), Some(dave.as_str()));
    poll("Dave's reaction on Slack", WAIT, async || {
        let m = w.emu.message(&general, &ts)?;
        let users = &m["reactions"][0]["users"];
        (users == &json!([dave])).then_some(())
    })
    .await;
    // A file, with a caption.
    let pdf = b"%PDF-1.4 dave's notes".to_vec();
    let mxc = w
        .owner
        .upload(pdf.clone(), "application/pdf", "notes.pdf")
        .await
        .unwrap();
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.file", "body": "my notes", "filename": "notes.pdf", "url": mxc,
                    "info": {"mimetype": "application/pdf", "size": pdf.len()}}),
        )
        .await
        .unwrap();
    let shared = poll("the file shared", WAIT, async || {
        w.emu.calls("files.completeUploadExternal").pop()
    })
    .await;
    assert_eq!(shared.token_user.as_deref(), Some(dave.as_str()));
    assert_eq!(shared.param("initial_comment").as_deref(), Some("my notes"));
    let share = poll("the share on Slack", WAIT, async || {
        w.emu
            .messages(&general)
            .into_iter()
            .find(|m| !m["files"].is_null())
    })
    .await;
    assert_eq!(share["user"], dave.as_str(), "{share}");

    // Dave writes on Slack himself: without double puppeting, his ghost brings it.
    w.emu
        .post_message(&dave, &general, "from dave's slack")
        .unwrap();
    let own = w
        .owner
        .wait_for_text(&room, "from dave's slack", WAIT)
        .await
        .unwrap();
    assert_eq!(own["sender"], w.ghost(&dave));

    // The echoes of the reaction and of the share were handled by now, and brought nothing.
    sentinel(&w, &general, &room, "after the echoes").await;
    let events = w.owner.messages(&room, 100).await.unwrap();
    let reactions: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["type"] == "m.reaction" && e["content"]["m.relates_to"]["event_id"] == lunch_id
        })
        .collect();
    assert_eq!(reactions.len(), 1, "only the owner's: {reactions:#?}");
    let files: Vec<&Value> = events
        .iter()
        .filter(|e| e["content"]["msgtype"] == "m.file")
        .collect();
    assert_eq!(files.len(), 1, "only the owner's: {files:#?}");
    assert_eq!(files[0]["sender"], w.owner.user_id());

    // A second one, which Dave takes back on Slack: its annotation goes in Matrix too.
    let tada = w
        .owner
        .send_event(
            &room,
            "m.reaction",
            &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": lunch_id, "key": "🎉"}}),
        )
        .await
        .unwrap();
    poll("Dave's tada on Slack", WAIT, async || {
        let m = w.emu.message(&general, &ts)?;
        let names: Vec<Value> = m["reactions"]
            .as_array()?
            .iter()
            .map(|r| r["name"].clone())
            .collect();
        names.contains(&json!("tada")).then_some(())
    })
    .await;
    w.emu.unreact(&dave, &general, &ts, "tada").unwrap();
    poll("the tada redacted in Matrix", WAIT, async || {
        let e = w.owner.event(&room, &tada).await.ok()?;
        (e["content"] == json!({})).then_some(())
    })
    .await;

    // Removed in Matrix: removed as Dave.
    w.owner.redact(&room, &reaction, None).await.unwrap();
    let remove = poll("reactions.remove", WAIT, async || {
        w.emu.calls("reactions.remove").pop()
    })
    .await;
    assert_eq!(remove.token_user.as_deref(), Some(dave.as_str()));
    poll("no reaction left on Slack", WAIT, async || {
        w.emu.message(&general, &ts)?["reactions"]
            .is_null()
            .then_some(())
    })
    .await;

    // The owner mentions himself with a pill: Dave's mention on Slack.
    let pill = format!(
        "<a href=\"https://matrix.to/#/{}\">Dan</a>: done",
        w.owner.user_id()
    );
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.text", "body": "Dan: done", "format": "org.matrix.custom.html",
                    "formatted_body": pill}),
        )
        .await
        .unwrap();
    w.wait_for_post(&format!("<@{dave}>: done")).await;
    bridge.stop().await.unwrap();
}

/// With double puppeting: what Dave (linked to the owner) does on Slack comes to Matrix from
/// the owner's own account, messages, edits and reactions, and none of it goes back to Slack;
/// the owner edits and deletes that Slack message and removes that reaction from Matrix, with
/// Dave's token, and no echo of those comes back either.
async fn a_linked_users_slack_side_comes_from_their_matrix_account(
    hs: HomeserverKind,
    db: Option<TestDb>,
) {
    let w = setup_with(hs, db, false, true).await;
    let bridge = w.env.run_bridge_full().await;
    let dm = management_room_of(&w.owner).await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let me = w.owner.user_id().to_owned();
    // Before the link, Dave's ghost brings what he writes.
    let dave = w.emu.user_id("dave").unwrap().to_string();
    let early_ts = w
        .emu
        .post_message(&dave, &general, "before the link")
        .unwrap();
    let early = w
        .owner
        .wait_for_text(&room, "before the link", WAIT)
        .await
        .unwrap();
    assert_eq!(early["sender"], w.ghost(&dave));
    link_dave(&w, &dm).await;

    let ts = w
        .emu
        .post_message(&dave, &general, "written on slack")
        .unwrap();
    let msg = w
        .owner
        .wait_for_text(&room, "written on slack", WAIT)
        .await
        .unwrap();
    assert_eq!(
        msg["sender"],
        me.as_str(),
        "from the owner's own account: {msg}"
    );
    let msg_id = msg["event_id"].as_str().unwrap().to_owned();

    w.emu
        .edit(&dave, &general, &ts, "written on slack, edited")
        .unwrap();
    let edit = w
        .owner
        .wait_for_event(
            &room,
            |e: &Value| {
                e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                    && e["content"]["m.relates_to"]["event_id"] == msg_id.as_str()
            },
            WAIT,
        )
        .await
        .expect("the Slack edit in Matrix");
    assert_eq!(edit["sender"], me.as_str());
    assert_eq!(
        edit["content"]["m.new_content"]["body"],
        "written on slack, edited"
    );

    let alice = w.emu.user_id("alice").unwrap();
    let alice_ts = w.emu.post_message(&alice, &general, "react to me").unwrap();
    let alice_msg = w
        .owner
        .wait_for_text(&room, "react to me", WAIT)
        .await
        .unwrap();
    w.emu.react(&dave, &general, &alice_ts, "tada").unwrap();
    let reaction = w
        .owner
        .wait_for_event(
            &room,
            |e: &Value| {
                e["type"] == "m.reaction"
                    && e["content"]["m.relates_to"]["event_id"] == alice_msg["event_id"]
            },
            WAIT,
        )
        .await
        .expect("Dave's Slack reaction in Matrix");
    assert_eq!(reaction["sender"], me.as_str());
    assert_eq!(
        reaction["content"]["m.relates_to"]["event_id"],
        alice_msg["event_id"]
    );

    // Nothing of it went back to Slack.
    sentinel(&w, &general, &room, "after dave's slack side").await;
    assert_eq!(w.posted(&general, "written on slack, edited"), 1);
    assert!(w.emu.calls("chat.postMessage").is_empty());
    assert!(w.emu.calls("chat.update").is_empty());
    assert!(w.emu.calls("reactions.add").is_empty());

    // The owner removes the reaction in Matrix: removed on Slack as Dave.
    let reaction_id = reaction["event_id"].as_str().unwrap();
    w.owner.redact(&room, reaction_id, None).await.unwrap();
    let remove = poll("reactions.remove", WAIT, async || {
        w.emu.calls("reactions.remove").pop()
    })
    .await;
    assert_eq!(remove.token_user.as_deref(), Some(dave.as_str()));
    poll("the reaction gone on Slack", WAIT, async || {
        w.emu.message(&general, &alice_ts)?["reactions"]
            .is_null()
            .then_some(())
    })
    .await;

    // He edits his Slack message in Matrix: changed on Slack with Dave's token, and its
    // message_changed brings no second edit.
    edit_in_matrix(&w, &room, &msg_id, "fixed from matrix").await;
    poll("the edit on Slack", WAIT, async || {
        (w.emu.message(&general, &ts)?["text"] == "fixed from matrix").then_some(())
    })
    .await;
    let update = w.emu.calls("chat.update").pop().unwrap();
    assert_eq!(update.token_user.as_deref(), Some(dave.as_str()));
    sentinel(&w, &general, &room, "after the matrix edit").await;
    let events = w.owner.messages(&room, 100).await.unwrap();
    let edits: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["content"]["m.relates_to"]["rel_type"] == "m.replace"
                && e["content"]["m.relates_to"]["event_id"] == msg_id.as_str()
        })
        .collect();
    assert_eq!(edits.len(), 2, "the Slack edit and the owner's: {edits:#?}");

    // The message from before the link, edited on Slack: the edit is the ghost's, as the
    // original is (clients ignore a replacement from someone else).
    w.emu
        .edit(&dave, &general, &early_ts, "before the link, edited after")
        .unwrap();
    let early_edit = w
        .owner
        .wait_for_event(
            &room,
            |e: &Value| e["content"]["m.relates_to"]["event_id"] == early["event_id"],
            WAIT,
        )
        .await
        .expect("the edit of the early message");
    assert_eq!(early_edit["sender"], w.ghost(&dave));

    // What he posted from Matrix (as Dave), Dave edits on Slack: the edit comes from the
    // owner's account, as the original did.
    let mine = w
        .owner
        .send_text(&room, "posted from matrix")
        .await
        .unwrap();
    let post = w.wait_for_post("posted from matrix").await;
    let mine_ts = post.response["ts"].as_str().unwrap().to_owned();
    w.emu
        .edit(
            &dave,
            &general,
            &mine_ts,
            "posted from matrix, fixed on slack",
        )
        .unwrap();
    let slack_edit = w
        .owner
        .wait_for_event(
            &room,
            |e: &Value| e["content"]["m.relates_to"]["event_id"] == mine.as_str(),
            WAIT,
        )
        .await
        .expect("Dave's Slack edit of the Matrix message");
    assert_eq!(slack_edit["sender"], me.as_str());
    assert_eq!(
        slack_edit["content"]["m.new_content"]["body"],
        "posted from matrix, fixed on slack"
    );

    // And deletes it in Matrix: deleted on Slack as Dave.
    w.owner.redact(&room, &msg_id, None).await.unwrap();
    poll("the delete on Slack", WAIT, async || {
        w.emu.message(&general, &ts).is_none().then_some(())
    })
    .await;
    let delete = w.emu.calls("chat.delete").pop().unwrap();
    assert_eq!(delete.token_user.as_deref(), Some(dave.as_str()));
    bridge.stop().await.unwrap();
}
