//! The file's values and the environment's, each as a layer the loader can
//! change before merging: a key given under its old name takes its new one
//! ([`RENAMED`]), and a key found bad is taken out so the next round can
//! find the next problem.

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};

/// Keys of the runtime's own sections that were renamed, as (old, new): a
/// file or env that still says the old name loads, and means the same.
///
/// The field carries `#[serde(alias)]` too, for a reader that deserializes
/// a section by itself; through figment the alias alone is not enough,
/// because the defaults are merged as a layer of their own under the new
/// name, and serde, seeing both names in one table, refuses the second
/// (`duplicate field`). So each layer is given the new name before merging.
pub const RENAMED: &[(&str, &str)] = &[("server.header_timeout_ms", "server.client_timeout_ms")];

/// What [`rename_key`] found in a layer.
#[derive(Debug, PartialEq, Eq)]
pub enum Renamed {
    /// The old key is not there.
    No,
    /// The old key was there and now has the new name.
    Yes,
    /// Both names are set in this layer: the old one is taken out, and
    /// the new one stands.
    Both,
}

/// Gives `old` (a dotted key) its `new` name in `dict`, if it is there.
pub fn rename_key(dict: &mut Dict, old: &str, new: &str) -> Renamed {
    let (Some((section, old_key)), Some((new_section, new_key))) =
        (old.split_once('.'), new.split_once('.'))
    else {
        return Renamed::No;
    };
    debug_assert_eq!(section, new_section, "a rename stays in its section");
    let Some(figment::value::Value::Dict(_, table)) = dict.get_mut(section) else {
        return Renamed::No;
    };
    let Some(value) = table.remove(old_key) else {
        return Renamed::No;
    };
    if table.contains_key(new_key) {
        return Renamed::Both;
    }
    table.insert(new_key.to_owned(), value);
    Renamed::Yes
}

/// The last part of a dotted key: `client_timeout_ms` of `server.client_timeout_ms`.
pub fn last(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// The name of the env layer's metadata, which tells its errors from the file's.
pub const ENV_LAYER: &str = "environment variable";

/// Values from one place (the file, or the environment), as a dictionary the
/// loader can take a bad key out of and parse again.
#[derive(Clone)]
pub struct Layer {
    /// Where the values came from.
    pub metadata: Metadata,
    /// The values, by section.
    pub dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Takes `path` (section, key) out of `dict`; false if it was not there.
pub fn remove_path(dict: &mut Dict, path: &[String]) -> bool {
    match path {
        [] => false,
        [key] => dict.remove(key).is_some(),
        [section, rest @ ..] => match dict.get_mut(section) {
            Some(figment::value::Value::Dict(_, inner)) => remove_path(inner, rest),
            // The section itself is not a table: it is the culprit.
            Some(_) => dict.remove(section).is_some(),
            None => false,
        },
    }
}
