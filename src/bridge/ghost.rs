//! Ghosts: the Matrix user of each Slack user or bot, registered once, with the Slack display
//! name and avatar (downloaded once, re-uploaded only when Slack's image changes), and joined
//! to the rooms it talks in.

use std::sync::Arc;

use ruma::{OwnedUserId, RoomId, UserId};

use super::{Core, LoginRuntime, Result};
use crate::{
    ids::{SenderId, TeamId},
    slack::types::User,
    store::Ghost,
};

/// Display name, avatar URL and bot flag of a Slack user or bot, as Slack reports them.
struct Profile {
    name: String,
    avatar: Option<String>,
    is_bot: bool,
}

fn profile_of_user(u: &User) -> Profile {
    Profile {
        name: u.display_name().to_owned(),
        avatar: u.profile.best_image().map(str::to_owned),
        is_bot: u.is_bot,
    }
}

async fn fetch_profile(rt: &LoginRuntime, user_id: &SenderId) -> Result<Profile> {
    if let Some(bot) = user_id.bot() {
        let bot = rt.slack.bots_info(&bot).await?;
        return Ok(Profile {
            name: bot.name.clone(),
            avatar: bot.icons.best().map(str::to_owned),
            is_bot: true,
        });
    }
    let user = rt
        .slack
        .users_info(&crate::ids::UserId::from(user_id.as_str()))
        .await?;
    Ok(profile_of_user(&user))
}

/// The ghost of a Slack user (`U…`) or bot (`B…`), registered and with a profile.
pub async fn ensure_ghost(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    user_id: &SenderId,
) -> Result<OwnedUserId> {
    let team = rt.team_id();
    if let Some(g) = core.store.get_ghost(team, user_id).await?
        && g.registered == 1
    {
        return Ok(g.mxid);
    }
    let _guard = core.lock(format!("ghost:{team}:{user_id}")).await;
    if let Some(g) = core.store.get_ghost(team, user_id).await?
        && g.registered == 1
    {
        return Ok(g.mxid);
    }
    let profile = fetch_profile(rt, user_id).await?;
    let mxid = core.ghost_mxid(team, user_id)?;
    apply_profile(core, rt, team, user_id, &mxid, profile, None).await?;
    Ok(mxid)
}

/// [`ensure_ghost`] for a user whose profile is at hand (from users.list): no users.info.
pub async fn ensure_ghost_of(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    user: &User,
) -> Result<OwnedUserId> {
    let team = rt.team_id();
    let _guard = core.lock(format!("ghost:{team}:{}", user.id)).await;
    let sender = SenderId::from(user.id.clone());
    if let Some(g) = core.store.get_ghost(team, &sender).await?
        && g.registered == 1
    {
        return Ok(g.mxid);
    }
    let mxid = core.ghost_mxid(team, &sender)?;
    apply_profile(core, rt, team, &sender, &mxid, profile_of_user(user), None).await?;
    Ok(mxid)
}

/// Pushes a changed Slack profile (`user_change`) to the ghost.
pub async fn update_from_user(core: &Arc<Core>, rt: &LoginRuntime, user: &User) -> Result<()> {
    let team = rt.team_id();
    let sender = SenderId::from(user.id.clone());
    let existing = core.store.get_ghost(team, &sender).await?;
    let Some(existing) = existing else {
        // Never seen talking: nothing to update until it does.
        return Ok(());
    };
    let _guard = core.lock(format!("ghost:{team}:{}", user.id)).await;
    apply_profile(
        core,
        rt,
        team,
        &sender,
        &existing.mxid.clone(),
        profile_of_user(user),
        Some(existing),
    )
    .await
}

async fn apply_profile(
    core: &Arc<Core>,
    rt: &LoginRuntime,
    team: &TeamId,
    user_id: &SenderId,
    mxid: &UserId,
    profile: Profile,
    existing: Option<Ghost>,
) -> Result<()> {
    core.matrix.ensure_registered(mxid).await?;
    let name = if profile.name.is_empty() {
        user_id.to_string()
    } else {
        profile.name.clone()
    };
    let old_name = existing.as_ref().map(|g| g.display_name.as_str());
    if old_name != Some(name.as_str()) {
        core.matrix.set_display_name(mxid, &name).await?;
    }
    let mut avatar_source = existing
        .as_ref()
        .map(|g| g.avatar_source.clone())
        .unwrap_or_default();
    let mut avatar_mxc = existing
        .as_ref()
        .map(|g| g.avatar_mxc.clone())
        .unwrap_or_default();
    if let Some(url) = profile.avatar.as_deref()
        && url != avatar_source
    {
        match rt.slack.download_file(url).await {
            Ok(bytes) => {
                let mime = image_mime(url);
                let mxc = core
                    .matrix
                    .upload(Some(mxid), bytes, mime, Some("avatar"))
                    .await?;
                core.matrix.set_avatar_url(mxid, mxc.clone()).await?;
                avatar_source = url.to_owned();
                avatar_mxc = mxc.to_string();
            }
            Err(e) => {
                tracing::warn!(%team, user = %user_id, error = %e, "cannot download the slack avatar");
            }
        }
    }
    core.store
        .upsert_ghost(&Ghost {
            team_id: team.to_owned(),
            user_id: user_id.to_owned(),
            mxid: mxid.to_owned(),
            display_name: name,
            avatar_source,
            avatar_mxc,
            is_bot: i64::from(profile.is_bot),
            registered: 1,
        })
        .await?;
    Ok(())
}

/// The content type of an image Slack serves (avatars, icons, custom emoji), from its URL;
/// PNG unless the name says otherwise.
pub fn image_mime(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".jpg") || path.ends_with(".jpeg") {
        "image/jpeg"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else {
        "image/png"
    }
}

/// Makes sure `mxid` is in `room`: the bot invites, the ghost joins.
pub async fn ensure_joined(core: &Core, room: &RoomId, mxid: &UserId) -> Result<()> {
    if core.is_joined(room, mxid) {
        return Ok(());
    }
    match core.matrix.invite(None, room, mxid).await {
        Ok(()) => {}
        // Already invited or joined.
        Err(e) if e.errcode() == Some("M_FORBIDDEN") => {}
        Err(e) => return Err(e.into()),
    }
    core.matrix.join(Some(mxid), room).await?;
    core.mark_joined(room, mxid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::image_mime;

    #[test]
    fn image_types_from_urls() {
        assert_eq!(
            image_mime("https://a.slack-edge.com/x/y_192.jpg"),
            "image/jpeg"
        );
        assert_eq!(
            image_mime("https://emoji.slack-edge.com/T1/pp/abc.GIF"),
            "image/gif"
        );
        assert_eq!(image_mime("https://x/y.webp?s=1"), "image/webp");
        assert_eq!(image_mime("https://x/avatars/U1.png?s=192"), "image/png");
        assert_eq!(image_mime("https://x/no-extension"), "image/png");
    }
}
