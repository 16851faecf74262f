//! Puppeting, as a Matrix user meets it: linking their own Slack account with `login-user`
//! (Slack's OAuth approval and the code pasted back, or a pasted user token), posting as that
//! account, and what happens when Slack revokes it — the Slack emulator, a real homeserver and the bridge, on
//! SQLite and PostgreSQL (`synapse::sqlite::…`, `tuwunel::postgres::…`).

mod support;

use serde_json::{Value, json};
use slack_emulator::Workspace;
use support::{
    TestDb,
    world::{WAIT, World, body, management_room_of, poll, world_with},
};
use testkit::HomeserverKind;

on_every_homeserver_and_database!(
    a_slack_account_links_through_oauth,
    a_pasted_user_token_links_until_slack_revokes_it,
    a_linked_user_posts_as_themselves,
);

const REDIRECT: &str = "https://bridge.example.org/slack-approved";

/// The demo workspace with the app's OAuth credentials in the bridge config; the bridge's
/// owner `@dan` will link the Slack user `dave`.
async fn setup(hs: HomeserverKind, db: Option<TestDb>, oauth: bool) -> World {
    let w = world_with(hs, Workspace::demo(), db, true, Vec::new()).await;
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
    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({
                "msgtype": "m.text",
                "body": "* hello, edited",
                "m.new_content": {"msgtype": "m.text", "body": "hello, edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": original},
            }),
        )
        .await
        .unwrap();
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
