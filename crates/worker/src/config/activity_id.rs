//! How an activity is named in logs, metrics and the config file.

use std::fmt;

/// A Step Functions activity or an SWF activity type, as the config file
/// names it. The one place that says what it is called in logs, metrics
/// labels and error messages ([`ActivityId::name`]), and which TOML key sets
/// one of its settings ([`ActivityId::key`], [`ActivityId::key_hint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityId {
    /// An `[activity.NAME]` table.
    StepFunctions {
        /// `NAME`.
        name: String,
    },
    /// The `index`th (from 0) `[[swf.LIST.activity]]` entry.
    SwfType {
        /// `LIST`, the key of the `[swf.LIST]` table.
        list: String,
        /// Position of the entry in the file, from 0.
        index: usize,
        /// Its `type`.
        type_name: String,
        /// Its `version`, if it has one.
        version: Option<String>,
    },
}

impl ActivityId {
    /// The name logs, metrics labels and error messages use: `NAME` for
    /// `[activity.NAME]`; `LIST/TYPE@VERSION` for an SWF type, `LIST/TYPE`
    /// for an entry without a version. Unique within a config (the
    /// validator refuses two of the same).
    pub(crate) fn name(&self) -> String {
        match self {
            ActivityId::StepFunctions { name } => name.clone(),
            ActivityId::SwfType {
                list,
                type_name,
                version: Some(v),
                ..
            } => format!("{list}/{type_name}@{v}"),
            ActivityId::SwfType {
                list,
                type_name,
                version: None,
                ..
            } => format!("{list}/{type_name}"),
        }
    }

    /// The TOML path of its table: `activity.NAME` or
    /// `swf.LIST.activity[INDEX]` (names that are not bare TOML keys are
    /// quoted, as they must be written in the file).
    pub fn table(&self) -> String {
        match self {
            ActivityId::StepFunctions { name } => format!("activity.{}", toml_key(name)),
            ActivityId::SwfType { list, index, .. } => {
                format!("swf.{}.activity[{index}]", toml_key(list))
            }
        }
    }

    /// The TOML path of one of its settings, e.g.
    /// `swf.orders.activity[1].task_timeout`.
    pub(crate) fn key(&self, field: &str) -> String {
        format!("{}.{field}", self.table())
    }

    /// [`ActivityId::key`] for a person to find in the file: for an SWF type
    /// the entry is also named by its `type` and `version`, since entries in
    /// an array of tables have no names of their own.
    pub(crate) fn key_hint(&self, field: &str) -> String {
        match self {
            ActivityId::StepFunctions { .. } => self.key(field),
            ActivityId::SwfType {
                list,
                type_name,
                version,
                ..
            } => format!(
                "{} (in the [[swf.{}.activity]] entry with type = {type_name:?} and {})",
                self.key(field),
                toml_key(list),
                match version {
                    Some(v) => format!("version = {v:?}"),
                    None => "no version".to_string(),
                }
            ),
        }
    }
}

impl fmt::Display for ActivityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// `key` as it is written in a dotted TOML key: bare if it can be, else
/// quoted.
pub fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
