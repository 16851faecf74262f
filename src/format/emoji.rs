//! Emoji names ⇄ unicode: Slack shortcodes (`thumbsup`, `+1::skin-tone-2`, `flag-de`) to unicode and
//! back, for message text and reactions.
//!
//! Slack's names come from iamcal/emoji-data, which mostly agrees with GitHub's gemoji (the `emojis`
//! crate). [`SLACK_NAMES`] holds the names where the two differ, so that a name coming from Slack
//! resolves and a name going to Slack is one Slack accepts.

use std::collections::HashMap;
use std::sync::OnceLock;

use emojis::{Emoji, SkinTone};

/// Slack names that gemoji lacks or maps differently. The first entry for an emoji is the name we
/// send to Slack, so order matters.
const SLACK_NAMES: &[(&str, &str)] = &[
    // Slack and gemoji disagree on these names; Slack's meaning must win.
    ("umbrella", "☂️"),
    ("umbrella_with_rain_drops", "☔"),
    ("snowman", "☃️"),
    ("snowman_without_snow", "⛄"),
    ("satellite", "🛰️"),
    ("satellite_antenna", "📡"),
    ("medal", "🎖️"),
    ("sports_medal", "🏅"),
    // Faces and hands that are commonly used as reactions.
    ("thinking_face", "🤔"),
    ("face_with_rolling_eyes", "🙄"),
    ("hugging_face", "🤗"),
    ("rolling_on_the_floor_laughing", "🤣"),
    ("robot_face", "🤖"),
    ("star-struck", "🤩"),
    ("grinning_face_with_star_eyes", "🤩"),
    ("zany_face", "🤪"),
    ("grinning_face_with_one_large_and_one_small_eye", "🤪"),
    ("face_with_hand_over_mouth", "🤭"),
    (
        "smiling_face_with_smiling_eyes_and_hand_covering_mouth",
        "🤭",
    ),
    ("shushing_face", "🤫"),
    ("face_with_finger_covering_closed_lips", "🤫"),
    ("face_with_monocle", "🧐"),
    ("face_vomiting", "🤮"),
    ("face_with_open_mouth_vomiting", "🤮"),
    ("serious_face_with_symbols", "🤬"),
    ("face_with_symbols_on_mouth", "🤬"),
    ("face_with_raised_eyebrow", "🤨"),
    ("face_with_one_eyebrow_raised", "🤨"),
    ("smiling_face_with_3_hearts", "🥰"),
    ("face_with_cowboy_hat", "🤠"),
    ("white_frowning_face", "☹️"),
    ("the_horns", "🤘"),
    ("sign_of_the_horns", "🤘"),
    ("spock-hand", "🖖"),
    ("hand_with_index_and_middle_fingers_crossed", "🤞"),
    ("heavy_heart_exclamation_mark_ornament", "❣️"),
    ("face_palm", "🤦"),
    ("man-facepalming", "🤦‍♂️"),
    ("woman-facepalming", "🤦‍♀️"),
    ("man-shrugging", "🤷‍♂️"),
    ("woman-shrugging", "🤷‍♀️"),
    ("man-raising-hand", "🙋‍♂️"),
    ("woman-raising-hand", "🙋‍♀️"),
    ("man-gesturing-no", "🙅‍♂️"),
    ("woman-gesturing-no", "🙅‍♀️"),
    ("man-gesturing-ok", "🙆‍♂️"),
    ("woman-gesturing-ok", "🙆‍♀️"),
    ("man-bowing", "🙇‍♂️"),
    ("woman-bowing", "🙇‍♀️"),
    ("male-technologist", "👨‍💻"),
    ("female-technologist", "👩‍💻"),
    ("rainbow-flag", "🏳️‍🌈"),
    ("unicorn_face", "🦄"),
    ("lion_face", "🦁"),
    ("dove_of_peace", "🕊️"),
    ("cheese_wedge", "🧀"),
    ("sleuth_or_spy", "🕵️"),
    ("speaking_head_in_silhouette", "🗣️"),
    ("man_in_business_suit_levitating", "🕴️"),
    ("weight_lifter", "🏋️"),
    ("golfer", "🏌️"),
    ("person_with_ball", "⛹️"),
    ("table_tennis_paddle_and_ball", "🏓"),
    ("badminton_racquet_and_shuttlecock", "🏸"),
    ("cricket_bat_and_ball", "🏏"),
    // Weather.
    ("mostly_sunny", "🌤️"),
    ("sun_small_cloud", "🌤️"),
    ("barely_sunny", "🌥️"),
    ("sun_behind_cloud", "🌥️"),
    ("partly_sunny_rain", "🌦️"),
    ("sun_behind_rain_cloud", "🌦️"),
    ("rain_cloud", "🌧️"),
    ("snow_cloud", "🌨️"),
    ("lightning", "🌩️"),
    ("lightning_cloud", "🌩️"),
    ("tornado_cloud", "🌪️"),
    ("wind_blowing_face", "🌬️"),
    ("thunder_cloud_and_rain", "⛈️"),
    ("umbrella_on_ground", "⛱️"),
    // Objects and places.
    ("knife_fork_plate", "🍽️"),
    ("beach_with_umbrella", "🏖️"),
    ("snow_capped_mountain", "🏔️"),
    ("house_buildings", "🏘️"),
    ("derelict_house_building", "🏚️"),
    ("racing_motorcycle", "🏍️"),
    ("admission_tickets", "🎟️"),
    ("film_frames", "🎞️"),
    ("three_button_mouse", "🖱️"),
    ("compression", "🗜️"),
    ("rolled_up_newspaper", "🗞️"),
    ("ballot_box_with_ballot", "🗳️"),
    ("lower_left_fountain_pen", "🖋️"),
    ("lower_left_ballpoint_pen", "🖊️"),
    ("lower_left_paintbrush", "🖌️"),
    ("lower_left_crayon", "🖍️"),
    ("spiral_note_pad", "🗒️"),
    ("spiral_calendar_pad", "🗓️"),
    ("linked_paperclips", "🖇️"),
    ("dagger_knife", "🗡️"),
    ("shopping_bags", "🛍️"),
    ("frame_with_picture", "🖼️"),
    ("om_symbol", "🕉️"),
    ("menorah_with_nine_branches", "🕎"),
    ("radioactive_sign", "☢️"),
    ("biohazard_sign", "☣️"),
];

/// Unicode for a Slack emoji name (without colons), e.g. `tada` → 🎉, `thumbsup::skin-tone-2` → 👍🏻.
/// `None` for custom workspace emoji and unknown names.
pub fn shortcode_to_unicode(name: &str) -> Option<&'static str> {
    let name = name.trim_matches(':');
    if let Some((base, tone)) = name.split_once("::") {
        let tone = skin_tone(tone)?;
        return lookup_name(base)?.with_skin_tone(tone).map(Emoji::as_str);
    }
    lookup_name(name).map(Emoji::as_str)
}

/// The Slack name (without colons) for a unicode emoji, e.g. 🎉 → `tada`, 👍🏻 → `+1::skin-tone-2`.
/// Feeding the result back to [`shortcode_to_unicode`] yields the same emoji.
pub fn unicode_to_shortcode(s: &str) -> Option<&'static str> {
    let emoji = emojis::get(s).or_else(|| emojis::get(s.trim_end_matches('\u{fe0f}')))?;
    reverse_table().get(emoji.as_str()).map(String::as_str)
}

fn lookup_name(name: &str) -> Option<&'static Emoji> {
    if name.is_empty() {
        return None;
    }
    if let Some((_, unicode)) = SLACK_NAMES.iter().find(|(n, _)| *n == name) {
        return emojis::get(unicode);
    }
    if let Some(emoji) = emojis::get_by_shortcode(name) {
        return Some(emoji);
    }
    if let Some(code) = name.strip_prefix("flag-") {
        return flag(code);
    }
    // Slack spells gendered and multi-word names with hyphens where gemoji uses underscores
    // (`man-shrugging`, `male-cook`).
    let underscored = name.replace('-', "_");
    if let Some(emoji) = emojis::get_by_shortcode(&underscored) {
        return Some(emoji);
    }
    for (slack, gemoji) in [("male_", "man_"), ("female_", "woman_")] {
        if let Some(rest) = underscored.strip_prefix(slack) {
            return emojis::get_by_shortcode(&format!("{gemoji}{rest}"));
        }
    }
    None
}

/// Slack's `skin-tone-2` … `skin-tone-6` (Fitzpatrick types; 1 and 2 share the lightest tone).
fn skin_tone(s: &str) -> Option<SkinTone> {
    match s.strip_prefix("skin-tone-")? {
        "1" | "2" => Some(SkinTone::Light),
        "3" => Some(SkinTone::MediumLight),
        "4" => Some(SkinTone::Medium),
        "5" => Some(SkinTone::MediumDark),
        "6" => Some(SkinTone::Dark),
        _ => None,
    }
}

fn skin_tone_suffix(tone: SkinTone) -> Option<&'static str> {
    match tone {
        SkinTone::Light => Some("skin-tone-2"),
        SkinTone::MediumLight => Some("skin-tone-3"),
        SkinTone::Medium => Some("skin-tone-4"),
        SkinTone::MediumDark => Some("skin-tone-5"),
        SkinTone::Dark => Some("skin-tone-6"),
        _ => None,
    }
}

/// A country flag from its ISO 3166 code, built from regional indicator symbols.
fn flag(code: &str) -> Option<&'static Emoji> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let flag: String = code
        .bytes()
        .filter_map(|b| char::from_u32(0x1F1E6 + u32::from(b.to_ascii_lowercase() - b'a')))
        .collect();
    emojis::get(&flag)
}

fn flag_code(emoji: &str) -> Option<String> {
    let chars: Vec<char> = emoji.chars().collect();
    if chars.len() != 2 {
        return None;
    }
    chars
        .iter()
        .map(|&c| {
            let offset = u32::from(c).checked_sub(0x1F1E6).filter(|o| *o < 26)?;
            char::from_u32(u32::from(b'a') + offset)
        })
        .collect()
}

/// Unicode → Slack name, built once; names with skin tones are composed strings, so they have to
/// live somewhere for the `'static` return type.
fn reverse_table() -> &'static HashMap<&'static str, String> {
    static TABLE: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for emoji in emojis::iter() {
            let Some(name) = base_name(emoji) else {
                continue;
            };
            table.insert(emoji.as_str(), name.clone());
            for toned in emoji.skin_tones().into_iter().flatten() {
                if let Some(suffix) = toned.skin_tone().and_then(skin_tone_suffix) {
                    table.insert(toned.as_str(), format!("{name}::{suffix}"));
                }
            }
        }
        table
    })
}

fn base_name(emoji: &'static Emoji) -> Option<String> {
    let unicode = emoji.as_str();
    if let Some((name, _)) = SLACK_NAMES
        .iter()
        .find(|(_, u)| emojis::get(u).is_some_and(|e| e.as_str() == unicode))
    {
        return Some((*name).to_owned());
    }
    if let Some(code) = flag_code(unicode) {
        return Some(format!("flag-{code}"));
    }
    emoji.shortcode().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_slack_names_resolve() {
        for (name, unicode) in [
            ("thumbsup", "👍"),
            ("+1", "👍"),
            ("-1", "👎"),
            ("heart", "❤️"),
            ("smile", "😄"),
            ("joy", "😂"),
            ("tada", "🎉"),
            ("white_check_mark", "✅"),
            ("eyes", "👀"),
            ("fire", "🔥"),
            ("rocket", "🚀"),
            ("slightly_smiling_face", "🙂"),
            ("thinking_face", "🤔"),
            ("face_with_rolling_eyes", "🙄"),
            ("pray", "🙏"),
            ("100", "💯"),
            ("man-shrugging", "🤷‍♂️"),
            ("star-struck", "🤩"),
            ("male-cook", "👨‍🍳"),
            ("flag-de", "🇩🇪"),
            ("us", "🇺🇸"),
        ] {
            assert_eq!(shortcode_to_unicode(name), Some(unicode), "{name}");
        }
    }

    #[test]
    fn slack_meaning_wins_over_gemoji() {
        assert_eq!(shortcode_to_unicode("umbrella"), Some("☂️"));
        assert_eq!(shortcode_to_unicode("snowman"), Some("☃️"));
        assert_eq!(unicode_to_shortcode("⛄"), Some("snowman_without_snow"));
    }

    #[test]
    fn skin_tones_both_ways() {
        assert_eq!(shortcode_to_unicode("thumbsup::skin-tone-2"), Some("👍🏻"));
        assert_eq!(shortcode_to_unicode("+1::skin-tone-6"), Some("👍🏿"));
        assert_eq!(shortcode_to_unicode("wave::skin-tone-4"), Some("👋🏽"));
        assert_eq!(unicode_to_shortcode("👍🏻"), Some("+1::skin-tone-2"));
        assert_eq!(unicode_to_shortcode("👋🏾"), Some("wave::skin-tone-5"));
        // No skin tone on a face, and a malformed tone, are not emoji.
        assert_eq!(shortcode_to_unicode("rocket::skin-tone-3"), None);
        assert_eq!(shortcode_to_unicode("wave::skin-tone-9"), None);
    }

    #[test]
    fn unknown_and_custom_names() {
        assert_eq!(shortcode_to_unicode("party_parrot"), None);
        assert_eq!(shortcode_to_unicode(""), None);
        assert_eq!(shortcode_to_unicode("flag-zz1"), None);
        assert_eq!(unicode_to_shortcode("a"), None);
        assert_eq!(unicode_to_shortcode(""), None);
    }

    #[test]
    fn colons_are_tolerated() {
        assert_eq!(shortcode_to_unicode(":tada:"), Some("🎉"));
    }

    #[test]
    fn preferred_slack_names() {
        assert_eq!(unicode_to_shortcode("👍"), Some("+1"));
        assert_eq!(unicode_to_shortcode("🤔"), Some("thinking_face"));
        assert_eq!(unicode_to_shortcode("🇨🇦"), Some("flag-ca"));
        assert_eq!(unicode_to_shortcode("🎉"), Some("tada"));
        // Unqualified heart (no variation selector) is still found.
        assert_eq!(unicode_to_shortcode("\u{2764}"), Some("heart"));
    }

    #[test]
    fn round_trips_hold_for_common_reactions() {
        for unicode in [
            "👍",
            "👎",
            "❤️",
            "😄",
            "😂",
            "🎉",
            "✅",
            "👀",
            "🔥",
            "🚀",
            "🙏",
            "💯",
            "🤔",
            "😢",
            "😮",
            "🙌",
            "👏",
            "🤷‍♂️",
            "👍🏽",
            "☂️",
            "☔",
            "🇩🇪",
        ] {
            let name = unicode_to_shortcode(unicode).unwrap_or_else(|| panic!("{unicode}"));
            assert_eq!(
                shortcode_to_unicode(name),
                Some(unicode),
                "{unicode} via {name}"
            );
        }
        for name in [
            "thumbsup",
            "heart",
            "smile",
            "joy",
            "tada",
            "white_check_mark",
            "eyes",
        ] {
            let unicode = shortcode_to_unicode(name).unwrap();
            let back = unicode_to_shortcode(unicode).unwrap();
            assert_eq!(
                shortcode_to_unicode(back),
                Some(unicode),
                "{name} via {back}"
            );
        }
    }

    #[test]
    fn every_table_entry_is_an_emoji() {
        for (name, unicode) in SLACK_NAMES {
            assert!(emojis::get(unicode).is_some(), "{name} → {unicode}");
        }
    }
}
