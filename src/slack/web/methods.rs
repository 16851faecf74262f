//! The Web API methods the bridge calls, one typed function each: parameters in, wire types
//! out, all through [`SlackClient::call`]; the `*_all` helpers and [`paginate`] follow cursors,
//! and [`SlackClient::upload_file`] runs the three-step external upload.

use std::{collections::HashSet, future::Future};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    SlackClient, SlackError,
    transport::{Auth, Form},
};
use crate::{
    config::Secret,
    ids::{BotId, ChannelId, Ts, UserId},
    slack::{
        requests::{
            Authed, FileUpload, History, HistoryQuery, OAuthAccess, Page, PostMessage, Posted,
            UpdateMessage, UploadRequest, UploadUrl,
        },
        types::{
            AuthTest, Bot, Conversation, ConversationKind, EmojiMap, File, Message, Team, User,
            Usergroup,
        },
    },
};

/// Guards against a server that keeps handing out cursors.
const MAX_PAGES: usize = 10_000;

impl SlackClient {
    /// auth.test, plus the bot token's granted scopes from the `x-oauth-scopes` header.
    pub async fn auth_test(&self) -> Result<Authed, SlackError> {
        let (mut v, headers) = self.call("auth.test", Auth::Bot, Form::new(), None).await?;
        let info: AuthTest = decode("auth.test", v.take())?;
        let scopes = headers
            .get("x-oauth-scopes")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Authed { info, scopes })
    }

    /// oauth.v2.access: the user token for the `code` Slack gave a user who approved the app
    /// (`redirect_uri` as in the authorize URL). The app's client id and secret authenticate;
    /// no token is sent.
    pub async fn oauth_v2_access(
        &self,
        client_id: &str,
        client_secret: &Secret,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OAuthAccess, SlackError> {
        let form = Form::new()
            .set("client_id", client_id)
            .set("client_secret", client_secret.expose())
            .set("code", code)
            .set("redirect_uri", redirect_uri);
        let (v, _) = self.call("oauth.v2.access", Auth::None, form, None).await?;
        decode("oauth.v2.access", v)
    }

    pub async fn team_info(&self) -> Result<Team, SlackError> {
        let v = self.bot("team.info", Form::new()).await?;
        field("team.info", v, "team")
    }

    /// One page of conversations.list of the given kinds (all kinds when empty).
    pub async fn conversations_list(
        &self,
        types: &[ConversationKind],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Conversation>, SlackError> {
        let types = if types.is_empty() {
            &ConversationKind::ALL[..]
        } else {
            types
        };
        let types: Vec<&str> = types.iter().map(|k| k.list_type()).collect();
        let form = Form::new()
            .set("types", types.join(","))
            .set("limit", limit.to_string())
            .opt("cursor", cursor);
        let v = self.bot("conversations.list", form).await?;
        page("conversations.list", v, "channels")
    }

    pub async fn conversations_list_all(
        &self,
        types: &[ConversationKind],
    ) -> Result<Vec<Conversation>, SlackError> {
        let limit = self.inner.options.page_size;
        paginate(|cursor| async move {
            self.conversations_list(types, cursor.as_deref(), limit)
                .await
        })
        .await
    }

    /// conversations.info, with `num_members`.
    pub async fn conversations_info(
        &self,
        channel: &ChannelId,
    ) -> Result<Conversation, SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("include_num_members", "true");
        let v = self.bot("conversations.info", form).await?;
        field("conversations.info", v, "channel")
    }

    pub async fn conversations_members(
        &self,
        channel: &ChannelId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<UserId>, SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("limit", limit.to_string())
            .opt("cursor", cursor);
        let v = self.bot("conversations.members", form).await?;
        page("conversations.members", v, "members")
    }

    pub async fn conversations_members_all(
        &self,
        channel: &ChannelId,
    ) -> Result<Vec<UserId>, SlackError> {
        let limit = self.inner.options.page_size;
        paginate(|cursor| async move {
            self.conversations_members(channel, cursor.as_deref(), limit)
                .await
        })
        .await
    }

    /// One page of conversations.history, newest first.
    pub async fn conversations_history(&self, q: &HistoryQuery) -> Result<History, SlackError> {
        let form = Form::new()
            .set("channel", q.channel.as_str())
            .opt("cursor", q.cursor.as_deref())
            .opt("limit", q.limit.map(|l| l.to_string()))
            .opt("oldest", q.oldest.as_deref())
            .opt("latest", q.latest.as_deref())
            .opt("inclusive", q.inclusive.then_some("true"))
            .opt(
                "include_all_metadata",
                q.include_all_metadata.then_some("true"),
            );
        let v = self.bot("conversations.history", form).await?;
        let has_more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        let Page { items, next_cursor } = page("conversations.history", v, "messages")?;
        Ok(History {
            messages: items,
            has_more,
            next_cursor,
        })
    }

    /// One page of a thread: the root first (on every page), then replies oldest first.
    pub async fn conversations_replies(
        &self,
        channel: &ChannelId,
        ts: &Ts,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Message>, SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("ts", ts)
            .opt("cursor", cursor)
            .opt("limit", limit.map(|l| l.to_string()));
        let v = self.bot("conversations.replies", form).await?;
        page("conversations.replies", v, "messages")
    }

    /// Joins a public channel (channels:join). Joining again is not an error.
    pub async fn conversations_join(
        &self,
        channel: &ChannelId,
    ) -> Result<Conversation, SlackError> {
        let v = self
            .bot("conversations.join", Form::new().set("channel", channel))
            .await?;
        field("conversations.join", v, "channel")
    }

    pub async fn users_info(&self, user: &UserId) -> Result<User, SlackError> {
        let v = self
            .bot("users.info", Form::new().set("user", user))
            .await?;
        field("users.info", v, "user")
    }

    pub async fn users_list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<User>, SlackError> {
        let form = Form::new()
            .set("limit", limit.to_string())
            .opt("cursor", cursor);
        let v = self.bot("users.list", form).await?;
        page("users.list", v, "members")
    }

    pub async fn users_list_all(&self) -> Result<Vec<User>, SlackError> {
        let limit = self.inner.options.page_size;
        paginate(|cursor| async move { self.users_list(cursor.as_deref(), limit).await }).await
    }

    /// bots.info; gives the `app_id` of a `bot_id` when auth.test does not.
    pub async fn bots_info(&self, bot: &BotId) -> Result<Bot, SlackError> {
        let v = self.bot("bots.info", Form::new().set("bot", bot)).await?;
        field("bots.info", v, "bot")
    }

    /// chat.postMessage. Calls for one channel are paced and sent in call order.
    pub async fn chat_post_message(&self, msg: &PostMessage) -> Result<Posted, SlackError> {
        let form = Form::new()
            .set("channel", msg.channel.as_str())
            .set("text", msg.text.as_str())
            .opt("blocks", msg.blocks.as_ref().map(Value::to_string))
            .opt("thread_ts", msg.thread_ts.as_deref())
            .opt(
                "reply_broadcast",
                (msg.reply_broadcast && msg.thread_ts.is_some()).then_some("true"),
            )
            .opt("username", msg.username.as_deref())
            .opt("icon_url", msg.icon_url.as_deref())
            .opt("icon_emoji", msg.icon_emoji.as_deref())
            .opt("unfurl_links", msg.unfurl_links.map(|b| b.to_string()))
            .opt("unfurl_media", msg.unfurl_media.map(|b| b.to_string()))
            .opt("metadata", msg.metadata.as_ref().map(Value::to_string));
        let (v, _) = self
            .call(
                "chat.postMessage",
                Auth::Bot,
                form,
                Some(msg.channel.as_str()),
            )
            .await?;
        decode("chat.postMessage", v)
    }

    pub async fn chat_update(&self, msg: &UpdateMessage) -> Result<Posted, SlackError> {
        let form = Form::new()
            .set("channel", msg.channel.as_str())
            .set("ts", msg.ts.as_str())
            .set("text", msg.text.as_str())
            .opt("blocks", msg.blocks.as_ref().map(Value::to_string));
        let v = self.bot("chat.update", form).await?;
        decode("chat.update", v)
    }

    pub async fn chat_delete(&self, channel: &ChannelId, ts: &Ts) -> Result<(), SlackError> {
        let form = Form::new().set("channel", channel).set("ts", ts);
        self.bot("chat.delete", form).await.map(drop)
    }

    /// reactions.add; `name` without colons (they are stripped if present).
    pub async fn reactions_add(
        &self,
        channel: &ChannelId,
        ts: &Ts,
        name: &str,
    ) -> Result<(), SlackError> {
        self.reaction("reactions.add", channel, ts, name).await
    }

    pub async fn reactions_remove(
        &self,
        channel: &ChannelId,
        ts: &Ts,
        name: &str,
    ) -> Result<(), SlackError> {
        self.reaction("reactions.remove", channel, ts, name).await
    }

    async fn reaction(
        &self,
        method: &str,
        channel: &ChannelId,
        ts: &Ts,
        name: &str,
    ) -> Result<(), SlackError> {
        let form = Form::new()
            .set("channel", channel)
            .set("timestamp", ts)
            .set("name", name.trim_matches(':'));
        self.bot(method, form).await.map(drop)
    }

    /// Step 1 of an upload: reserve a file ID and an upload URL for `length` bytes.
    pub async fn files_get_upload_url_external(
        &self,
        filename: &str,
        length: u64,
    ) -> Result<UploadUrl, SlackError> {
        let form = Form::new()
            .set("filename", filename)
            .set("length", length.to_string());
        let v = self.bot("files.getUploadURLExternal", form).await?;
        decode("files.getUploadURLExternal", v)
    }

    /// Step 3 of an upload: finish it and share the files into `channel_id` (they stay
    /// private without one). Slack shares asynchronously; the `file_share` message follows.
    pub async fn files_complete_upload_external(
        &self,
        files: &[FileUpload],
        channel_id: Option<&ChannelId>,
        thread_ts: Option<&Ts>,
        initial_comment: Option<&str>,
    ) -> Result<Vec<File>, SlackError> {
        let files: Vec<Value> = files
            .iter()
            .map(|f| {
                let mut o = serde_json::json!({"id": f.id});
                if let Some(t) = &f.title {
                    o["title"] = Value::String(t.clone());
                }
                o
            })
            .collect();
        let form = Form::new()
            .set("files", Value::Array(files).to_string())
            .opt("channel_id", channel_id)
            .opt("thread_ts", thread_ts)
            .opt("initial_comment", initial_comment);
        let v = self.bot("files.completeUploadExternal", form).await?;
        list("files.completeUploadExternal", v, "files")
    }

    /// The whole upload flow for one file; returns the completed file object.
    pub async fn upload_file(&self, req: UploadRequest) -> Result<File, SlackError> {
        let target = self
            .files_get_upload_url_external(&req.filename, req.bytes.len() as u64)
            .await?;
        self.upload_to_url(&target.upload_url, req.bytes).await?;
        let files = self
            .files_complete_upload_external(
                &[FileUpload {
                    id: target.file_id.clone(),
                    title: req.title,
                }],
                req.channel_id.as_ref(),
                req.thread_ts.as_ref(),
                req.initial_comment.as_deref(),
            )
            .await?;
        files
            .into_iter()
            .find(|f| f.id == target.file_id)
            .ok_or_else(|| SlackError::Decode {
                method: "files.completeUploadExternal".into(),
                reason: format!("the answer does not list file {}", target.file_id),
            })
    }

    pub async fn files_info(&self, file: &str) -> Result<File, SlackError> {
        let v = self
            .bot("files.info", Form::new().set("file", file))
            .await?;
        field("files.info", v, "file")
    }

    /// The workspace's user groups with their members.
    pub async fn usergroups_list(&self) -> Result<Vec<Usergroup>, SlackError> {
        let v = self
            .bot("usergroups.list", Form::new().set("include_users", "true"))
            .await?;
        field("usergroups.list", v, "usergroups")
    }

    /// Custom emoji: name → image URL or `alias:<name>`.
    pub async fn emoji_list(&self) -> Result<EmojiMap, SlackError> {
        let v = self.bot("emoji.list", Form::new()).await?;
        field("emoji.list", v, "emoji")
    }

    /// A fresh, single-use Socket Mode URL. Uses the app-level token, in the header only.
    pub async fn apps_connections_open(&self) -> Result<String, SlackError> {
        let (v, _) = self
            .call("apps.connections.open", Auth::App, Form::new(), None)
            .await?;
        field("apps.connections.open", v, "url")
    }
}

/// Follows `next_cursor` until it is empty, collecting every item. Empty pages that still
/// carry a cursor are normal (Slack filters after paging) and are followed.
pub async fn paginate<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, SlackError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, SlackError>>,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let page = fetch(cursor.take()).await?;
        out.extend(page.items);
        match page.next_cursor.filter(|c| !c.is_empty()) {
            None => return Ok(out),
            Some(next) => {
                if !seen.insert(next.clone()) {
                    return Err(SlackError::Decode {
                        method: "pagination".into(),
                        reason: "slack repeated a cursor; stopping to avoid a loop".into(),
                    });
                }
                cursor = Some(next);
            }
        }
    }
    Err(SlackError::Decode {
        method: "pagination".into(),
        reason: format!("more than {MAX_PAGES} pages"),
    })
}

fn decode<T: DeserializeOwned>(method: &str, v: Value) -> Result<T, SlackError> {
    serde_json::from_value(v).map_err(|e| SlackError::Decode {
        method: method.to_string(),
        reason: e.to_string(),
    })
}

/// A required top-level field of the answer.
fn field<T: DeserializeOwned>(method: &str, mut v: Value, name: &str) -> Result<T, SlackError> {
    match v.get_mut(name).map(Value::take) {
        None | Some(Value::Null) => Err(SlackError::Decode {
            method: method.to_string(),
            reason: format!("no `{name}` in the answer"),
        }),
        Some(f) => decode(method, f),
    }
}

/// A list field; absent or null reads as empty.
fn list<T: DeserializeOwned>(method: &str, mut v: Value, name: &str) -> Result<Vec<T>, SlackError> {
    match v.get_mut(name).map(Value::take) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(f) => decode(method, f),
    }
}

fn page<T: DeserializeOwned>(method: &str, v: Value, name: &str) -> Result<Page<T>, SlackError> {
    let next_cursor = v
        .pointer("/response_metadata/next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Ok(Page {
        items: list(method, v, name)?,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn paginate_follows_cursors_through_empty_pages() {
        let pages = [
            (vec![1, 2], Some("a")),
            (vec![], Some("b")),
            (vec![3], Some("")),
        ];
        let calls = Mutex::new(Vec::new());
        let all = paginate(|cursor| {
            calls.lock().unwrap().push(cursor.clone());
            let i = calls.lock().unwrap().len() - 1;
            let (items, next) = pages[i].clone();
            async move {
                Ok(Page {
                    items,
                    next_cursor: next.map(str::to_string),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(
            *calls.lock().unwrap(),
            [None, Some("a".to_string()), Some("b".to_string())]
        );

        let looping = paginate(|_| async {
            Ok(Page::<u8> {
                items: vec![],
                next_cursor: Some("same".into()),
            })
        })
        .await;
        assert!(matches!(looping, Err(SlackError::Decode { .. })));
    }
}
