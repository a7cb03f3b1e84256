//! Where a value sits in a resource (`Patient.name[0].given`), kept as links to its parents
//! while a check walks down and written out only when an issue names it. The checks of a write
//! visit every value, and writing each value's path as they went was a tenth of a create's
//! time on the async workers.

use std::fmt;

/// A value's place: the resource (or element) at the root, a field or an array item below.
#[derive(Debug, Clone, Copy)]
pub enum JsonPath<'a> {
    /// The root, written as it is (`Patient`).
    Root(&'a str),
    /// A field of the parent: `parent.key`.
    Field(&'a JsonPath<'a>, &'a str),
    /// An item of the parent array: `parent[i]`.
    Item(&'a JsonPath<'a>, usize),
}

impl<'a> JsonPath<'a> {
    /// The path of field `key` below this one.
    pub fn field(&'a self, key: &'a str) -> JsonPath<'a> {
        JsonPath::Field(self, key)
    }

    /// The path of item `i` of the array here.
    pub fn item(&'a self, i: usize) -> JsonPath<'a> {
        JsonPath::Item(self, i)
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonPath::Root(root) => f.write_str(root),
            JsonPath::Field(parent, key) => write!(f, "{parent}.{key}"),
            JsonPath::Item(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fields_and_items_below_the_root() {
        let root = JsonPath::Root("Patient");
        let name = root.field("name");
        let first = name.item(0);
        let given = first.field("given");
        assert_eq!(root.to_string(), "Patient");
        assert_eq!(given.to_string(), "Patient.name[0].given");
        assert_eq!(given.item(2).to_string(), "Patient.name[0].given[2]");
    }
}
