//! Iceberg properties that may hold a secret (S3 keys, a catalog's OAuth2 credential). The map
//! is handed to the libraries as it is, but never printed: `Debug` lists the keys only.

use std::collections::HashMap;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Props(pub HashMap<String, String>);

impl Props {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl From<HashMap<String, String>> for Props {
    fn from(map: HashMap<String, String>) -> Self {
        Props(map)
    }
}

impl FromIterator<(String, String)> for Props {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Props(iter.into_iter().collect())
    }
}

impl std::fmt::Debug for Props {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_set().entries(keys).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_print() {
        let p = Props(HashMap::from([
            ("credential".to_string(), "id:hunter2".to_string()),
            ("s3.endpoint".to_string(), "http://x".to_string()),
        ]));
        let shown = format!("{p:?}");
        assert_eq!(shown, r#"{"credential", "s3.endpoint"}"#);
        assert!(!shown.contains("hunter2"));
    }
}
