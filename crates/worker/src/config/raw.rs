//! The config file as serde reads it: one struct per kind of table, each
//! rejecting unknown keys, and values wrapped in [`Spanned`] so that
//! validation can say where in the file a bad value is written.
//!
//! An `[activity.NAME]` table, an `[[swf.LIST.activity]]` entry and a
//! `[tenant.NAME]` table share keys (limits; everything a task may reach).
//! Those are declared once, in [`with_shared_keys!`], and written into each
//! table's struct by [`table!`]: not with `#[serde(flatten)]`, which does not
//! work with `deny_unknown_fields`, so that an unknown key is still refused
//! with its path, the keys the table does take and a "did you mean" hint.
//! The shared keys of a table are then taken out as one [`RawLimits`] and
//! one [`RawTask`], which the validator checks in one place.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A string as written, with where.
pub(super) type Text = Spanned<String>;
/// An integer as written, with where.
pub(super) type Int = Spanned<i64>;

/// Calls `$then!` with its own arguments followed by the shared keys: the
/// `limits` a tenant may give defaults for, and the rest of what a `task`
/// (a Step Functions activity or an SWF type) may set.
macro_rules! with_shared_keys {
    ($then:ident! { $($args:tt)* }) => {
        $then! {
            $($args)*
            limits {
                task_timeout: Option<Text>,
                memory_limit: Option<Text>,
                host_memory_limit: Option<Text>,
                log_limit: Option<Text>,
                fuel: Option<Int>,
                output_limit: Option<Text>,
            }
            task {
                tenant: Option<Text>,
                #[serde(default)]
                env: BTreeMap<Text, String>,
                #[serde(default)]
                env_passthrough: Vec<Text>,
                #[serde(default)]
                preopen: Vec<RawPreopen>,
                #[serde(default)]
                secrets: BTreeMap<Text, RawSecret>,
                #[serde(default)]
                sockets: Vec<Text>,
                name_lookup: Option<bool>,
                table_elements: Option<Int>,
                max_instances: Option<Int>,
                http: Option<RawHttp>,
                record: Option<RawRecord>,
            }
        }
    };
}

/// Declares a table's struct: its own keys, then the shared ones it takes
/// (`+ limits`, or `+ limits + task`), and methods that take those out.
/// `groups` declares [`RawLimits`] and [`RawTask`] themselves.
macro_rules! table {
    (
        groups
        limits { $($(#[$lm:meta])* $l:ident: $lt:ty,)* }
        task { $($(#[$tm:meta])* $t:ident: $tt:ty,)* }
    ) => {
        /// The limit keys of a table, taken out of it.
        #[derive(Debug, Default)]
        pub(super) struct RawLimits { $(pub(super) $l: $lt,)* }
        /// The other per-task keys of an activity or SWF type, taken out of it.
        #[derive(Debug, Default)]
        pub(super) struct RawTask { $(pub(super) $t: $tt,)* }
    };
    (
        $(#[$m:meta])* $name:ident { $($(#[$om:meta])* $o:ident: $ot:ty,)* } + limits
        limits { $($(#[$lm:meta])* $l:ident: $lt:ty,)* }
        task { $($task:tt)* }
    ) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            $($(#[$om])* pub(super) $o: $ot,)*
            $($(#[$lm])* pub(super) $l: $lt,)*
        }
        impl $name {
            /// Takes the limit keys out.
            pub(super) fn take_limits(&mut self) -> RawLimits {
                RawLimits { $($l: std::mem::take(&mut self.$l),)* }
            }
        }
    };
    (
        $(#[$m:meta])* $name:ident { $($(#[$om:meta])* $o:ident: $ot:ty,)* } + limits + task
        limits { $($(#[$lm:meta])* $l:ident: $lt:ty,)* }
        task { $($(#[$tm:meta])* $t:ident: $tt:ty,)* }
    ) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            $($(#[$om])* pub(super) $o: $ot,)*
            $($(#[$lm])* pub(super) $l: $lt,)*
            $($(#[$tm])* pub(super) $t: $tt,)*
        }
        impl $name {
            /// Takes the shared keys out.
            pub(super) fn take_shared(&mut self) -> (RawLimits, RawTask) {
                (
                    RawLimits { $($l: std::mem::take(&mut self.$l),)* },
                    RawTask { $($t: std::mem::take(&mut self.$t),)* },
                )
            }
        }
    };
}

with_shared_keys!(table! { groups });

/// Raw TOML shape; see [`super::Config`] for meanings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) region: Option<Text>,
    pub(super) endpoint: Option<Text>,
    pub(super) worker_name: Option<Text>,
    pub(super) shutdown_grace: Option<Text>,
    pub(super) cache_dir: Option<String>,
    pub(super) metrics_addr: Option<Text>,
    pub(super) otlp_endpoint: Option<Text>,
    pub(super) reload: Option<bool>,
    pub(super) reload_debounce: Option<Text>,
    pub(super) component_refresh: Option<Text>,
    pub(super) component_store_max: Option<Text>,
    pub(super) aws_client: Option<Text>,
    #[serde(default)]
    pub(super) insecure_registries: Vec<Text>,
    #[serde(default)]
    pub(super) activity: BTreeMap<String, RawActivity>,
    #[serde(default)]
    pub(super) swf: BTreeMap<String, RawTaskList>,
    #[serde(default)]
    pub(super) tenant: BTreeMap<String, RawTenant>,
}

/// An `[swf.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTaskList {
    pub(super) domain: Text,
    pub(super) task_list: Text,
    pub(super) max_concurrent: Option<Int>,
    pub(super) pollers: Option<Int>,
    #[serde(default)]
    pub(super) activity: Vec<RawActivityType>,
}

with_shared_keys!(table! {
    /// An `[[swf.LIST.activity]]` entry.
    RawActivityType {
        #[serde(rename = "type")]
        name: Text,
        version: Option<String>,
        component: Text,
        sha256: Option<Text>,
        heartbeat_interval: Option<Text>,
        cancel_grace: Option<Text>,
    } + limits + task
});

with_shared_keys!(table! {
    /// An `[activity.NAME]` table.
    RawActivity {
        arn: Text,
        component: Text,
        sha256: Option<Text>,
        max_concurrent: Option<Int>,
        pollers: Option<Int>,
        heartbeat_interval: Option<Text>,
    } + limits + task
});

with_shared_keys!(table! {
    /// A `[tenant.NAME]` table: caps, and defaults for its activities' limits.
    RawTenant {
        max_concurrent: Option<Int>,
        max_memory: Option<Text>,
    } + limits
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) allow: Vec<Text>,
    pub(super) timeout: Option<Text>,
    pub(super) max_response: Option<Text>,
    pub(super) max_request: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    pub(super) dir: Text,
    pub(super) max_bytes: Option<Text>,
    #[serde(default)]
    pub(super) redact: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreopen {
    pub(super) host: Text,
    pub(super) guest: Text,
    pub(super) mode: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) env: Option<String>,
    pub(super) file: Option<String>,
}
