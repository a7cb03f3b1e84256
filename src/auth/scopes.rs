//! SMART scopes (App Launch 2.2, "Scopes and Launch Context"): resource scopes in v1 syntax
//! (`patient/Observation.read`, `user/*.*`) and v2 syntax (`patient/Observation.rs`,
//! `system/*.cruds`, granular `patient/Observation.rs?category=…`), and the context and
//! identity scopes (`launch/patient`, `openid`, `fhirUser`, `offline_access`, …). v1 scopes
//! mean what v2 says they do: `.read` = `.rs`, `.write` = `.cud`, `.*` = `.cruds`.

use std::fmt;

/// Whose data a resource scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The patient in context only.
    Patient,
    /// What the signed-in user may see.
    User,
    /// What the client system is authorized for.
    System,
}

impl Level {
    /// The scope prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "patient",
            Level::User => "user",
            Level::System => "system",
        }
    }
}

/// A FHIR interaction as scopes name it (v2 letters `c r u d s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `c`: create.
    Create,
    /// `r`: read, vread, instance history.
    Read,
    /// `u`: update, patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search, type and system history.
    Search,
}

impl Interaction {
    fn bit(self) -> u8 {
        match self {
            Interaction::Create => 1,
            Interaction::Read => 2,
            Interaction::Update => 4,
            Interaction::Delete => 8,
            Interaction::Search => 16,
        }
    }

    /// The v2 letter.
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }

    /// What a person would call it.
    pub fn describe(self) -> &'static str {
        match self {
            Interaction::Create => "create",
            Interaction::Read => "read",
            Interaction::Update => "update",
            Interaction::Delete => "delete",
            Interaction::Search => "search",
        }
    }
}

/// One resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    /// Whose data.
    pub level: Level,
    /// The resource type; `None` for `*`.
    pub resource_type: Option<String>,
    /// The permitted interactions, as bits of [`Interaction`].
    perms: u8,
    /// Granular search parameters that resources must match (`?category=…`); empty for none.
    pub filter: Vec<(String, String)>,
    /// The scope as written.
    pub text: String,
}

impl ResourceScope {
    /// Parses one resource scope; `None` when `text` is not one (or its permissions are out of
    /// order or unknown, which the spec lets servers ignore).
    pub fn parse(text: &str) -> Option<ResourceScope> {
        let (level, rest) = text.split_once('/')?;
        let level = match level {
            "patient" => Level::Patient,
            "user" => Level::User,
            "system" => Level::System,
            _ => return None,
        };
        let (resource, rest) = rest.split_once('.')?;
        let resource_type = match resource {
            "*" => None,
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(t.to_owned())
            }
            _ => return None,
        };
        let (perms_text, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let perms = match perms_text {
            "read" => Interaction::Read.bit() | Interaction::Search.bit(),
            "write" => {
                Interaction::Create.bit() | Interaction::Update.bit() | Interaction::Delete.bit()
            }
            "*" => 31,
            letters => v2_perms(letters)?,
        };
        let filter: Vec<(String, String)> = match query {
            Some(q) => form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            None => Vec::new(),
        };
        if query.is_some()
            && (filter.is_empty() || filter.iter().any(|(k, v)| k.is_empty() || v.is_empty()))
        {
            return None;
        }
        Some(ResourceScope {
            level,
            resource_type,
            perms,
            filter,
            text: text.to_owned(),
        })
    }

    /// Whether it permits `interaction` on `resource_type`.
    pub fn permits(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.perms & interaction.bit() != 0
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| t == resource_type)
    }

    /// Whether everything `other` permits, this permits too (for narrowing a grant).
    pub fn covers(&self, other: &ResourceScope) -> bool {
        self.level == other.level
            && other.perms & !self.perms == 0
            && (self.resource_type.is_none() || self.resource_type == other.resource_type)
            && (self.filter.is_empty() || self.filter == other.filter)
    }
}

fn v2_perms(letters: &str) -> Option<u8> {
    const ORDER: [Interaction; 5] = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Search,
    ];
    let mut perms = 0u8;
    let mut next = 0usize;
    for c in letters.chars() {
        let position = ORDER[next..].iter().position(|i| i.letter() == c)?;
        perms |= ORDER[next + position].bit();
        next += position + 1;
    }
    (perms != 0).then_some(perms)
}

/// Granular filters: each a list of search parameters a resource must match.
pub type Filters = Vec<Vec<(String, String)>>;

/// A set of scopes as requested or granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// Every scope, as written, in order, without duplicates.
    pub all: Vec<String>,
    /// The resource scopes among them.
    pub resources: Vec<ResourceScope>,
}

impl Scopes {
    /// Parses a space-separated scope string.
    pub fn parse(text: &str) -> Scopes {
        let mut scopes = Scopes::default();
        for word in text.split_ascii_whitespace() {
            if scopes.all.iter().any(|s| s == word) {
                continue;
            }
            scopes.all.push(word.to_owned());
            if let Some(resource) = ResourceScope::parse(word) {
                scopes.resources.push(resource);
            }
        }
        scopes
    }

    /// Whether `word` (`openid`, `launch/patient`, …) is among them.
    pub fn has(&self, word: &str) -> bool {
        self.all.iter().any(|s| s == word)
    }

    /// The best permit for `interaction` on `resource_type`: the widest level among the scopes
    /// that permit it, and the granular filters of that level (none when any scope of that level
    /// has no filter). `None` when no scope permits it.
    pub fn decide(
        &self,
        resource_type: &str,
        interaction: Interaction,
    ) -> Option<(Level, Filters)> {
        let matching = || {
            self.resources
                .iter()
                .filter(move |s| s.permits(resource_type, interaction))
        };
        let level = matching().map(|s| s.level).max()?;
        let at_level = || matching().filter(move |s| s.level == level);
        let filters = if at_level().any(|s| s.filter.is_empty()) {
            Vec::new()
        } else {
            at_level().map(|s| s.filter.clone()).collect()
        };
        Some((level, filters))
    }

    /// Whether any resource scope has `level`.
    pub fn any_at(&self, level: Level) -> bool {
        self.resources.iter().any(|s| s.level == level)
    }

    /// The scopes of `self` that `allowed` permits: resource scopes covered by one of
    /// `allowed`'s, other words when `allowed` lists them.
    pub fn within(&self, allowed: &Scopes) -> Scopes {
        let kept: Vec<&str> = self
            .all
            .iter()
            .filter(|word| match ResourceScope::parse(word) {
                Some(scope) => allowed.resources.iter().any(|a| a.covers(&scope)),
                None => allowed.has(word),
            })
            .map(String::as_str)
            .collect();
        Scopes::parse(&kept.join(" "))
    }

    /// Whether every scope of `self` is within `granted` (a refresh may narrow, never widen).
    pub fn is_within(&self, granted: &Scopes) -> bool {
        self.within(granted).all.len() == self.all.len()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.all.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_scopes_mean_their_v2_letters() {
        let read = ResourceScope::parse("patient/Observation.read").unwrap();
        assert!(read.permits("Observation", Interaction::Read));
        assert!(read.permits("Observation", Interaction::Search));
        assert!(!read.permits("Observation", Interaction::Create));
        assert!(!read.permits("Patient", Interaction::Read));
        let write = ResourceScope::parse("user/*.write").unwrap();
        for i in [
            Interaction::Create,
            Interaction::Update,
            Interaction::Delete,
        ] {
            assert!(write.permits("Encounter", i));
        }
        assert!(!write.permits("Encounter", Interaction::Read));
        let all = ResourceScope::parse("system/*.*").unwrap();
        assert!(all.permits("Anything", Interaction::Search));
    }

    #[test]
    fn v2_letters_must_be_in_order() {
        let rs = ResourceScope::parse("patient/Observation.rs").unwrap();
        assert!(rs.permits("Observation", Interaction::Read));
        assert!(!rs.permits("Observation", Interaction::Update));
        assert!(
            ResourceScope::parse("system/*.cruds")
                .unwrap()
                .permits("X", Interaction::Delete)
        );
        assert_eq!(ResourceScope::parse("patient/Observation.sr"), None);
        assert_eq!(ResourceScope::parse("patient/Observation.rr"), None);
        assert_eq!(ResourceScope::parse("patient/Observation.x"), None);
        assert_eq!(ResourceScope::parse("patient/Observation."), None);
        assert_eq!(ResourceScope::parse("doctor/Observation.rs"), None);
        assert_eq!(ResourceScope::parse("launch/patient"), None);
        assert_eq!(ResourceScope::parse("openid"), None);
    }

    #[test]
    fn granular_scopes_carry_their_filter() {
        let s = ResourceScope::parse(
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        )
        .unwrap();
        assert_eq!(s.filter.len(), 1);
        assert_eq!(s.filter[0].0, "category");
        assert!(s.filter[0].1.ends_with("|laboratory"));
        assert_eq!(ResourceScope::parse("patient/Observation.rs?"), None);
    }

    #[test]
    fn the_widest_level_and_its_filters_decide() {
        let scopes = Scopes::parse(
            "launch/patient patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs user/Patient.rs",
        );
        let (level, filters) = scopes.decide("Observation", Interaction::Search).unwrap();
        assert_eq!(level, Level::Patient);
        assert_eq!(filters.len(), 2);
        assert_eq!(
            scopes.decide("Patient", Interaction::Read).unwrap().0,
            Level::User
        );
        assert_eq!(scopes.decide("Observation", Interaction::Create), None);
        let mixed =
            Scopes::parse("patient/Observation.rs patient/Observation.rs?category=laboratory");
        assert!(
            mixed
                .decide("Observation", Interaction::Read)
                .unwrap()
                .1
                .is_empty()
        );
    }

    #[test]
    fn narrowing_is_allowed_and_widening_is_not() {
        let granted = Scopes::parse("openid fhirUser patient/*.rs offline_access");
        assert!(Scopes::parse("patient/Observation.rs").is_within(&granted));
        assert!(Scopes::parse("patient/Observation.r openid").is_within(&granted));
        assert!(!Scopes::parse("patient/Observation.cruds").is_within(&granted));
        assert!(!Scopes::parse("user/Observation.rs").is_within(&granted));
        assert!(!Scopes::parse("launch/patient").is_within(&granted));
        let kept = Scopes::parse("patient/Observation.rs user/*.rs openid").within(&granted);
        assert_eq!(kept.to_string(), "patient/Observation.rs openid");
    }
}
