//! The parts of Feast's registry protobuf (`feast.core.Registry`, protos/feast/core/*.proto)
//! that are read, declared by hand with Feast's field numbers. Everything else in the file
//! (metadata, tags, other options of a data source's `oneof`, newer fields) is skipped by
//! prost as unknown fields.

use std::collections::BTreeMap;

/// `feast.core.Registry`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Registry {
    #[prost(message, repeated, tag = "1")]
    pub entities: Vec<Entity>,
    #[prost(message, repeated, tag = "6")]
    pub feature_views: Vec<FeatureView>,
    #[prost(message, repeated, tag = "7")]
    pub feature_services: Vec<FeatureService>,
    /// Only names and projects, to say what such a view is when one is asked for.
    #[prost(message, repeated, tag = "8")]
    pub on_demand_feature_views: Vec<Named>,
    #[prost(message, repeated, tag = "14")]
    pub stream_feature_views: Vec<Named>,
}

/// `Entity { EntitySpecV2 spec = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Entity {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<EntitySpec>,
}

/// `EntitySpecV2`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EntitySpec {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `feast.types.ValueType.Enum`.
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(string, tag = "4")]
    pub join_key: String,
    #[prost(string, tag = "9")]
    pub project: String,
}

/// `FeatureView { FeatureViewSpec spec = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureViewSpec>,
}

/// `FeatureViewSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    /// Entity names.
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpec>,
    #[prost(message, optional, tag = "6")]
    pub ttl: Option<Duration>,
    #[prost(message, optional, tag = "7")]
    pub batch_source: Option<DataSource>,
    /// The entity columns with the types `feast apply` inferred or was given.
    #[prost(message, repeated, tag = "12")]
    pub entity_columns: Vec<FeatureSpec>,
}

/// `FeatureSpecV2`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FeatureSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub value_type: i32,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `DataSource`: its type, columns, and of the `options` oneof only `file_options`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DataSource {
    /// `DataSource.SourceType`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Source column name to feature (or timestamp, entity) name.
    #[prost(btree_map = "string, string", tag = "2")]
    pub field_mapping: BTreeMap<String, String>,
    #[prost(string, tag = "3")]
    pub timestamp_field: String,
    #[prost(string, tag = "5")]
    pub created_timestamp_column: String,
    #[prost(message, optional, tag = "11")]
    pub file_options: Option<FileOptions>,
    #[prost(string, tag = "17")]
    pub data_source_class_type: String,
    #[prost(string, tag = "20")]
    pub name: String,
}

/// `DataSource.FileOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FileOptions {
    #[prost(string, tag = "2")]
    pub uri: String,
    #[prost(string, tag = "3")]
    pub s3_endpoint_override: String,
}

/// `FeatureService { FeatureServiceSpec spec = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FeatureService {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureServiceSpec>,
}

/// `FeatureServiceSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FeatureServiceSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureViewProjection>,
}

/// `FeatureViewProjection`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FeatureViewProjection {
    #[prost(string, tag = "1")]
    pub feature_view_name: String,
    #[prost(message, repeated, tag = "2")]
    pub feature_columns: Vec<FeatureSpec>,
    #[prost(string, tag = "3")]
    pub feature_view_name_alias: String,
    #[prost(btree_map = "string, string", tag = "4")]
    pub join_key_map: BTreeMap<String, String>,
}

/// An on-demand or stream feature view: `{ spec = 1 { name = 1; project = 2; } }`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Named {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<NamedSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NamedSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
}
