//! The bridge layer end to end while it runs: channels joined later, renames and topics,
//! profile and avatar changes, emotes, other bots, mentions, refused sends, and the bot's
//! commands — the Slack emulator, a real homeserver and the bridge, on SQLite; on Synapse and
//! on tuwunel (`synapse::…`, `tuwunel::…`).

mod support;

use std::time::Duration;

use serde_json::json;
use slack_emulator::{ProfileUpdate, Workspace};
use support::{
    bridge::DOMAIN,
    world::{OWNER, WAIT, body, bot, poll, wait_after, world},
};
use testkit::HomeserverKind;

on_both_homeservers!(
    a_channel_the_bot_joins_later_gets_its_portal_live,
    renames_and_topic_changes_reach_the_room,
    a_profile_change_renames_the_ghost,
    ghost_avatars_are_uploaded_once_and_follow_changes,
    slack_emotes_and_other_bots_arrive_from_their_ghosts,
    slack_mentions_become_pills_and_mentions,
    a_refused_send_is_explained_in_the_room,
    commands_in_the_management_room_and_behind_the_prefix,
    matrix_emotes_and_bold_reach_slack_as_mrkdwn,
    relayed_messages_carry_the_avatar_when_media_is_public,
    matrix_messages_sent_while_the_bridge_is_down_arrive_once,
    without_the_relay_only_the_owner_posts,
    the_owner_is_told_when_slack_revokes_the_app;
    synapse_only: a_failed_portal_sync_is_tried_again,
);

/// Slack failing while the bridge lists the channels at start-up delays the portals; they
/// appear once Slack answers again, without a restart.
async fn a_failed_portal_sync_is_tried_again(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    w.emu.fault("conversations.list").forever().http_status(503);
    let bridge = w.env.run_bridge_full().await;
    // Listed, failed, and listed again.
    poll("the bridge listing the channels twice", WAIT, async || {
        (w.emu.calls("conversations.list").len() >= 2).then_some(())
    })
    .await;
    let general = w.emu.channel_id("general").unwrap();
    let store = w.store().await.unwrap();
    assert!(
        store
            .get_portal(&w.emu.team_id().into(), &general.as_str().into())
            .await
            .unwrap()
            .is_none_or(|p| p.room_id.is_none()),
        "no portal while Slack fails"
    );
    w.emu.clear_faults();
    w.room_of(&general).await;
    bridge.stop().await.unwrap();
}

async fn a_channel_the_bot_joins_later_gets_its_portal_live(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    // The initial sync is under way (or done) before the channels appear.
    w.room_of(&w.emu.channel_id("general").unwrap()).await;
    let space = w.space().await;
    let alice = w.emu.user_id("alice").unwrap();
    let bot_user = w.emu.bot_user_id();

    let public = w.emu.create_channel(&alice, "late-news", false).unwrap();
    w.emu.join(&bot_user, &public).unwrap();
    let private = w.emu.create_channel(&alice, "late-secret", true).unwrap();
    w.emu.invite(&alice, &bot_user, &private).unwrap();

    let bot_client = w.env.bot_client().await;
    poll(
        "the workspace icon as the space's avatar",
        WAIT,
        async || {
            let a = bot_client
                .state_event(&space, "m.room.avatar", "")
                .await
                .ok()?;
            a["url"].as_str()?.starts_with("mxc://").then_some(())
        },
    )
    .await;
    for (channel, name) in [(&public, "#late-news"), (&private, "late-secret")] {
        let room = w.room_of(channel).await;
        let n = bot_client
            .state_event(&room, "m.room.name", "")
            .await
            .unwrap();
        assert_eq!(n["name"], name, "the room of {channel} is named after it");
        let member = bot_client
            .state_event(&room, "m.room.member", w.owner.user_id())
            .await
            .unwrap();
        assert_eq!(member["membership"], "invite", "the owner is invited");
        poll(
            &format!("{room} as a child of the space"),
            WAIT,
            async || {
                bot_client
                    .state_event(&space, "m.space.child", &room)
                    .await
                    .ok()
                    .filter(|c| c["via"].as_array().is_some_and(|v| !v.is_empty()))
            },
        )
        .await;
    }

    // And the new room works: a message in it arrives.
    let room = w.joined_room_of(&public).await;
    w.emu
        .post_message(&alice, &public, "first in late-news")
        .unwrap();
    w.owner
        .wait_for_text(&room, "first in late-news", WAIT)
        .await
        .unwrap();
    bridge.stop().await.unwrap();
}

async fn renames_and_topic_changes_reach_the_room(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let alice = w.emu.user_id("alice").unwrap();
    let random = w.emu.channel_id("random").unwrap();
    let secret = w.emu.channel_id("secret").unwrap();
    let random_room = w.room_of(&random).await;
    let secret_room = w.room_of(&secret).await;
    let bot_client = w.env.bot_client().await;

    w.emu
        .rename_channel(&alice, &random, "random-stuff")
        .unwrap();
    w.emu
        .set_topic(&alice, &random, "Lunch plans and cat pictures")
        .unwrap();
    w.emu.rename_channel(&alice, &secret, "secret-two").unwrap();
    w.emu
        .rename_channel(&alice, &secret, "secret-three")
        .unwrap();

    for (room, expected) in [
        (&random_room, "#random-stuff"),
        (&secret_room, "secret-three"),
    ] {
        poll(&format!("{room} renamed to {expected}"), WAIT, async || {
            let n = bot_client.state_event(room, "m.room.name", "").await.ok()?;
            (n["name"] == expected).then_some(())
        })
        .await;
    }
    poll("the new topic of #random-stuff", WAIT, async || {
        let t = bot_client
            .state_event(&random_room, "m.room.topic", "")
            .await
            .ok()?;
        (t["topic"] == "Lunch plans and cat pictures").then_some(())
    })
    .await;
    // The store agrees with the room (it is written after the room's state).
    let store = w.store().await.unwrap();
    poll(
        "the portal's name and topic in the store",
        WAIT,
        async || {
            let portal = store
                .get_portal(&w.emu.team_id().into(), &random.as_str().into())
                .await
                .unwrap()
                .unwrap();
            (portal.name == "#random-stuff" && portal.topic == "Lunch plans and cat pictures")
                .then_some(())
        },
    )
    .await;
    store.close().await;
    bridge.stop().await.unwrap();
}

async fn a_profile_change_renames_the_ghost(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let room = w.joined_room_of(&general).await;
    w.emu.post_message(&alice, &general, "hi there").unwrap();
    w.owner
        .wait_for_text(&room, "hi there", WAIT)
        .await
        .unwrap();
    let ghost = w.ghost(&alice);
    let member = w
        .owner
        .state_event(&room, "m.room.member", &ghost)
        .await
        .unwrap();
    assert_eq!(member["displayname"], "alice");

    // Frank is in no bridged channel: his change is dropped (no ghost for him). His event
    // goes first, so it was handled once alice's, behind it in the same queue, shows.
    let frank = w.emu.add_user("frank", "Frank Outsider");
    w.emu
        .update_profile(
            &frank,
            ProfileUpdate {
                display_name: Some("Frank the Silent".into()),
                ..ProfileUpdate::default()
            },
        )
        .unwrap();
    w.emu
        .update_profile(
            &alice,
            ProfileUpdate {
                display_name: Some("Alice in Wonderland".into()),
                ..ProfileUpdate::default()
            },
        )
        .unwrap();
    poll(
        "the ghost's new display name in the room",
        WAIT,
        async || {
            let m = w
                .owner
                .state_event(&room, "m.room.member", &ghost)
                .await
                .ok()?;
            (m["displayname"] == "Alice in Wonderland").then_some(())
        },
    )
    .await;
    assert_eq!(
        w.ghost_row(&alice).await.unwrap().display_name,
        "Alice in Wonderland"
    );
    assert!(
        w.ghost_row(&frank).await.is_none(),
        "no ghost for a user in no bridged channel"
    );
    // Her next message comes from the renamed ghost (no rename back).
    w.emu.post_message(&alice, &general, "still me").unwrap();
    let e = w
        .owner
        .wait_for_text(&room, "still me", WAIT)
        .await
        .unwrap();
    assert_eq!(e["sender"], ghost.as_str());
    let member = w
        .owner
        .state_event(&room, "m.room.member", &ghost)
        .await
        .unwrap();
    assert_eq!(member["displayname"], "Alice in Wonderland");
    bridge.stop().await.unwrap();
}

async fn ghost_avatars_are_uploaded_once_and_follow_changes(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let bob = w.emu.user_id("bob").unwrap();
    let room = w.joined_room_of(&general).await;
    let ghost = w.ghost(&bob);

    w.emu.post_message(&bob, &general, "avatar one").unwrap();
    w.owner
        .wait_for_text(&room, "avatar one", WAIT)
        .await
        .unwrap();
    let member = w
        .owner
        .state_event(&room, "m.room.member", &ghost)
        .await
        .unwrap();
    let first = member["avatar_url"].as_str().unwrap_or_default().to_owned();
    assert!(
        first.starts_with("mxc://"),
        "the ghost has an avatar: {member}"
    );
    let row = w.ghost_row(&bob).await.unwrap();
    assert_eq!(row.avatar_mxc, first);
    assert!(
        row.avatar_source.starts_with(&w.emu.base_url()),
        "downloaded from Slack: {}",
        row.avatar_source
    );

    // A second message: the same upload, nothing new.
    w.emu.post_message(&bob, &general, "avatar two").unwrap();
    w.owner
        .wait_for_text(&room, "avatar two", WAIT)
        .await
        .unwrap();
    let member = w
        .owner
        .state_event(&room, "m.room.member", &ghost)
        .await
        .unwrap();
    assert_eq!(member["avatar_url"], first.as_str(), "not re-uploaded");
    assert_eq!(w.ghost_row(&bob).await.unwrap().avatar_mxc, first);

    // A profile change that leaves the picture alone keeps the upload too.
    w.emu
        .update_profile(
            &bob,
            ProfileUpdate {
                title: Some("Builder in chief".into()),
                display_name: Some("Bob B.".into()),
                ..ProfileUpdate::default()
            },
        )
        .unwrap();
    let member = poll("bob's new display name", WAIT, async || {
        let m = w
            .owner
            .state_event(&room, "m.room.member", &ghost)
            .await
            .ok()?;
        (m["displayname"] == "Bob B.").then_some(m)
    })
    .await;
    assert_eq!(
        member["avatar_url"],
        first.as_str(),
        "same picture, no upload"
    );
    assert_eq!(w.ghost_row(&bob).await.unwrap().avatar_mxc, first);

    // A new picture on Slack: a new upload.
    w.emu
        .set_avatar(&bob, slack_emulator::util::avatar_png("e7392d", 48))
        .unwrap();
    w.emu.post_message(&bob, &general, "avatar three").unwrap();
    w.owner
        .wait_for_text(&room, "avatar three", WAIT)
        .await
        .unwrap();
    let second = poll("the ghost's new avatar", WAIT, async || {
        let m = w
            .owner
            .state_event(&room, "m.room.member", &ghost)
            .await
            .ok()?;
        let url = m["avatar_url"].as_str()?.to_owned();
        (url != first && url.starts_with("mxc://")).then_some(url)
    })
    .await;
    let new_row = w.ghost_row(&bob).await.unwrap();
    assert_eq!(new_row.avatar_mxc, second);
    assert_ne!(
        new_row.avatar_source, row.avatar_source,
        "the new image was fetched"
    );
    bridge.stop().await.unwrap();
}

async fn slack_emotes_and_other_bots_arrive_from_their_ghosts(hs: HomeserverKind) {
    let mut ws = Workspace::demo();
    let (_deploy_bot, deploy_user) = ws.add_bot("deploybot");
    let w = world(hs, ws).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let carol = w.emu.user_id("carol").unwrap();
    let room = w.joined_room_of(&general).await;

    w.emu
        .me_message(&carol, &general, "waves at everyone")
        .unwrap();
    let e = w
        .owner
        .wait_for_text(&room, "waves at everyone", WAIT)
        .await
        .unwrap();
    assert_eq!(e["content"]["msgtype"], "m.emote");
    assert_eq!(e["sender"], w.ghost(&carol).as_str());

    w.emu.join(&deploy_user, &general).unwrap();
    w.emu
        .post_message(&deploy_user, &general, "deployed v1.2.3")
        .unwrap();
    let e = w
        .owner
        .wait_for_text(&room, "deployed v1.2.3", WAIT)
        .await
        .unwrap();
    let ghost = w.ghost(&deploy_user);
    assert_eq!(e["sender"], ghost.as_str());
    assert_eq!(e["content"]["msgtype"], "m.text");
    let member = w
        .owner
        .state_event(&room, "m.room.member", &ghost)
        .await
        .unwrap();
    assert_eq!(member["displayname"], "deploybot");
    assert_eq!(w.ghost_row(&deploy_user).await.unwrap().is_bot, 1);

    // An integration's legacy attachments: a quote with the title, text and fields.
    w.emu
        .post_attachments(
            &deploy_user,
            &general,
            "",
            json!([{"fallback": "Deploy finished", "title": "Deploy v1.2.4",
                    "title_link": "https://ci.example/d/124", "text": "*succeeded* in 42 s",
                    "fields": [{"title": "Env", "value": "prod", "short": true}]}]),
        )
        .unwrap();
    let e = w
        .owner
        .wait_for_event(&room, |e| body(e).contains("Deploy v1.2.4"), WAIT)
        .await
        .unwrap();
    assert_eq!(e["sender"], ghost.as_str());
    assert_eq!(
        body(&e),
        "> Deploy v1.2.4 (https://ci.example/d/124)\n> succeeded in 42 s\n> Env: prod"
    );
    let html = e["content"]["formatted_body"].as_str().unwrap();
    assert!(
        html.starts_with("<blockquote><strong><a href=\"https://ci.example/d/124\">"),
        "{html}"
    );
    bridge.stop().await.unwrap();
}

async fn slack_mentions_become_pills_and_mentions(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let dave = w.emu.user_id("dave").unwrap();
    let room = w.joined_room_of(&general).await;

    w.emu
        .post_message(&alice, &general, &format!("ping <@{dave}> about lunch"))
        .unwrap();
    let e = w
        .owner
        .wait_for_event(
            &room,
            |e| e["type"] == "m.room.message" && body(e).ends_with("about lunch"),
            WAIT,
        )
        .await
        .unwrap();
    let dave_ghost = w.ghost(&dave);
    assert_eq!(e["sender"], w.ghost(&alice).as_str());
    assert!(body(&e).contains("dave"), "{e}");
    let html = e["content"]["formatted_body"].as_str().unwrap_or_default();
    assert!(
        html.contains(&format!("https://matrix.to/#/{dave_ghost}")),
        "a pill to dave's ghost: {e}"
    );
    assert_eq!(
        e["content"]["m.mentions"]["user_ids"],
        json!([dave_ghost]),
        "{e}"
    );
    // The mentioned user's ghost exists with its Slack name, though it never talked.
    assert_eq!(w.ghost_row(&dave).await.unwrap().display_name, "dave");
    bridge.stop().await.unwrap();
}

async fn a_refused_send_is_explained_in_the_room(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;

    w.emu.fail_next("chat.postMessage", 1, "not_in_channel");
    let sent = w.owner.send_text(&room, "this one bounces").await.unwrap();
    let notice = wait_after(&w.owner, &room, &sent, |e| e["sender"] == bot().as_str())
        .await
        .expect("a notice about the refused message");
    assert_eq!(notice["content"]["msgtype"], "m.notice");
    let text = body(&notice);
    assert!(text.contains("not sent to Slack"), "{text}");
    assert!(text.contains("not_in_channel"), "{text}");
    assert!(text.contains("invite the bot"), "{text}");

    // The next message goes through; the refused one was never posted (nor retried).
    w.owner.send_text(&room, "this one lands").await.unwrap();
    // Per-portal order: the refused message (and any retry of it) came before this one.
    w.wait_for_post("this one lands").await;
    let texts = w.slack_texts(&general);
    assert!(!texts.iter().any(|t| t == "this one bounces"), "{texts:?}");
    assert_eq!(texts.iter().filter(|t| *t == "this one lands").count(), 1);
    assert_eq!(
        w.emu
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.param("text").as_deref() == Some("this one bounces"))
            .count(),
        1,
        "tried once, not retried"
    );
    let notices = w
        .owner
        .messages(&room, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["sender"] == bot().as_str() && e["content"]["msgtype"] == "m.notice")
        .count();
    assert_eq!(notices, 1, "one notice, for the refused message only");
    bridge.stop().await.unwrap();
}

async fn commands_in_the_management_room_and_behind_the_prefix(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let alice = w.emu.user_id("alice").unwrap();
    let room = w.joined_room_of(&general).await;
    // Wait for the initial sync, so `list` is complete.
    for name in ["random", "secret"] {
        w.room_of(&w.emu.channel_id(name).unwrap()).await;
    }
    assert!(
        w.emu.wait_for_connections(1, WAIT).await,
        "the Socket Mode connection is up"
    );
    let dm = w.management_room().await;

    let help = w.command(&dm, "help").await;
    for cmd in ["login", "logout", "ping", "list"] {
        assert!(
            body(&help).contains(cmd),
            "help lists {cmd}: {}",
            body(&help)
        );
    }

    let ping = w.command(&dm, "ping").await;
    assert_eq!(ping["content"]["msgtype"], "m.notice");
    let text = body(&ping);
    assert!(
        text.contains("Acme Demo") && text.contains(": connected"),
        "{text}"
    );
    assert!(
        text.contains("Homeserver") && text.contains("reachable"),
        "{text}"
    );

    let list = w.command(&dm, "list").await;
    let text = body(&list);
    for expected in ["#general", "#random", "secret", &room] {
        assert!(text.contains(expected), "list shows {expected}: {text}");
    }
    assert!(!text.contains("not-bridged"), "{text}");

    // In a portal room: the prefix makes a command, which is not sent to Slack.
    let ping = w.command(&room, "!slack ping").await;
    assert!(body(&ping).contains(": connected"), "{}", body(&ping));
    // Without it (or with a word that merely starts like it), a message is a message.
    w.owner.send_text(&room, "ping").await.unwrap();
    w.owner.send_text(&room, "!slackers unite").await.unwrap();
    w.wait_for_post("!slackers unite").await;
    let posted: Vec<String> = w
        .emu
        .calls("chat.postMessage")
        .iter()
        .filter_map(|c| c.param("text"))
        .collect();
    assert_eq!(
        posted,
        ["ping", "!slackers unite"],
        "the command was not posted"
    );

    // Logout: answered, then nothing more is bridged and ping says so.
    let logout = w.command(&dm, "logout").await;
    assert!(
        body(&logout).contains("Logged out of Acme Demo"),
        "{}",
        body(&logout)
    );
    assert!(
        w.emu.wait_for_connections(0, WAIT).await,
        "the Socket Mode connection is closed after logout"
    );
    let ping = w.command(&dm, "ping").await;
    let text = body(&ping);
    assert!(text.contains("logged out"), "{text}");
    assert!(!text.contains(": connected"), "{text}");
    // The logout closed the login's socket: Slack has nobody to deliver to.
    poll("the socket to close", WAIT, async || {
        (w.emu.connection_count() == 0).then_some(())
    })
    .await;
    w.emu
        .post_message(&alice, &general, "after the logout")
        .unwrap();
    assert!(
        w.emu.pending_events() > 0,
        "the event waits undelivered at Slack"
    );
    let bodies: Vec<String> = w
        .owner
        .messages(&room, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| body(e).to_owned())
        .collect();
    assert!(
        !bodies.iter().any(|b| b == "after the logout"),
        "nothing is bridged after logout: {bodies:?}"
    );
    // And Matrix messages are refused with the reason instead of being posted.
    let sent = w.owner.send_text(&room, "anyone there?").await.unwrap();
    let notice = wait_after(&w.owner, &room, &sent, |e| e["sender"] == bot().as_str())
        .await
        .expect("a notice about the disconnected login");
    assert!(body(&notice).contains("not connected"), "{}", body(&notice));
    assert!(
        !w.slack_texts(&general).iter().any(|t| t == "anyone there?"),
        "not posted after logout"
    );
    bridge.stop().await.unwrap();
}

async fn matrix_emotes_and_bold_reach_slack_as_mrkdwn(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;

    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({"msgtype": "m.emote", "body": "dances"}),
        )
        .await
        .unwrap();
    let emote = w.wait_for_post("_dances_").await;
    assert_eq!(emote.param("username").as_deref(), Some(OWNER));
    assert_eq!(
        emote.param("icon_url"),
        None,
        "no public media URL configured: no avatar"
    );

    w.owner
        .send_event(
            &room,
            "m.room.message",
            &json!({
                "msgtype": "m.text",
                "body": "**bold** move",
                "format": "org.matrix.custom.html",
                "formatted_body": "<strong>bold</strong> move",
            }),
        )
        .await
        .unwrap();
    w.wait_for_post("*bold* move").await;
    let texts = w.slack_texts(&general);
    assert!(texts.iter().any(|t| t == "_dances_"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "*bold* move"), "{texts:?}");
    bridge.stop().await.unwrap();
}

async fn relayed_messages_carry_the_avatar_when_media_is_public(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    w.env.edit_config(
        "    public_media_url: \"\"",
        "    public_media_url: https://media.example.test/_matrix/media/v3/download/",
    );
    w.owner
        .put(
            &format!(
                "/_matrix/client/v3/profile/{}/avatar_url",
                testkit::enc(w.owner.user_id())
            ),
            &json!({"avatar_url": format!("mxc://{DOMAIN}/ownerface")}),
        )
        .await
        .unwrap();
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    w.owner.send_text(&room, "with my face").await.unwrap();
    let post = w.wait_for_post("with my face").await;
    assert_eq!(
        post.param("icon_url").as_deref(),
        Some(
            format!("https://media.example.test/_matrix/media/v3/download/{DOMAIN}/ownerface")
                .as_str()
        )
    );
    bridge.stop().await.unwrap();
}

/// Matrix messages sent while the bridge is down wait in the homeserver, then in the inbox
/// until the login runs again, and reach Slack once, in order.
async fn matrix_messages_sent_while_the_bridge_is_down_arrive_once(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    bridge.stop().await.unwrap();
    for i in 0..3 {
        w.owner
            .send_text(&room, &format!("while down {i}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bridge = w.env.run_bridge_full().await;
    w.wait_for_post("while down 2").await;
    // A sentinel behind them: once it is on Slack, a duplicate would be too.
    w.owner.send_text(&room, "after the restart").await.unwrap();
    w.wait_for_post("after the restart").await;
    let posted: Vec<String> = w
        .slack_texts(&general)
        .into_iter()
        .filter(|t| t.starts_with("while down"))
        .collect();
    assert_eq!(posted, ["while down 0", "while down 1", "while down 2"]);
    let events = w.owner.messages(&room, 100).await.unwrap();
    assert!(
        !events.iter().any(|e| body(e).contains("not connected")),
        "no 'not connected' notice for messages that only waited"
    );
    bridge.stop().await.unwrap();
}

/// With the relay off, only the login's owner posts through its bot; others are told why.
async fn without_the_relay_only_the_owner_posts(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    w.env.edit_config(
        "    enabled: true\n    # Public base URL",
        "    enabled: false\n    # Public base URL",
    );
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    let room = w.joined_room_of(&general).await;
    let eve = w
        .env
        .hs
        .register_user("eve", "pw-eve", false)
        .await
        .unwrap();
    let bot_client = w.env.bot_client().await;
    bot_client.invite(&room, eve.user_id()).await.unwrap();
    eve.join(&room).await.unwrap();
    let sent = eve.send_text(&room, "from eve").await.unwrap();
    let notice = wait_after(&w.owner, &room, &sent, |e| e["sender"] == bot().as_str())
        .await
        .expect("eve is told why her message was not sent");
    assert!(body(&notice).contains("relay is off"), "{notice}");
    w.owner.send_text(&room, "from the owner").await.unwrap();
    w.wait_for_post("from the owner").await;
    assert!(!w.slack_texts(&general).iter().any(|t| t == "from eve"));
    bridge.stop().await.unwrap();
}

/// When Slack revokes the app, the login is marked invalid and its owner is told why.
async fn the_owner_is_told_when_slack_revokes_the_app(hs: HomeserverKind) {
    let w = world(hs, Workspace::demo()).await;
    let bridge = w.env.run_bridge_full().await;
    let general = w.emu.channel_id("general").unwrap();
    w.room_of(&general).await;
    let dm = w.management_room().await;
    w.emu.revoke_app_token();
    w.owner
        .wait_for_event(
            &dm,
            |e| body(e).contains("stopped working") && body(e).contains("login"),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("the owner was not told about the dead login: {e}"));
    let store = w.store().await.unwrap();
    let login = store
        .get_login(&w.emu.team_id().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.state, slack_bridge::store::LoginState::Invalid);
    assert!(login.state_reason.unwrap().contains("invalid_auth"));
    bridge.stop().await.unwrap();
}
