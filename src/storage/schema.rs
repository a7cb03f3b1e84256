//! Diesel table definitions, shared by SQLite and PostgreSQL (portable column types only).
// @generated-style: kept in step with migrations/{sqlite,postgres} by hand.

diesel::table! {
    /// Every version of every resource, append-only.
    resource_versions (seq) {
        /// Global write order (history paging cursor).
        seq -> BigInt,
        /// The resource type.
        resource_type -> Text,
        /// The logical id.
        resource_id -> Text,
        /// 1, 2, 3… per resource.
        version_id -> BigInt,
        /// When the version was written, ms since the epoch.
        last_updated -> BigInt,
        /// POST, PUT or DELETE.
        method -> Text,
        /// True for a delete tombstone.
        deleted -> Bool,
        /// The resource as served (canonical JSON); empty for a tombstone.
        content -> Binary,
        /// True when this version brought the resource into existence.
        created -> Bool,
    }
}

diesel::table! {
    /// The current version of each resource.
    resources (resource_type, resource_id) {
        /// The resource type.
        resource_type -> Text,
        /// The logical id.
        resource_id -> Text,
        /// The current version.
        version_id -> BigInt,
        /// When the current version was written.
        last_updated -> BigInt,
        /// True when the current version is a tombstone.
        deleted -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(resource_versions, resources);
