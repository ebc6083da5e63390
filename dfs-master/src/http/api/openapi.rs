//! The OpenAPI 3 document of the API (`GET /api/v1/openapi.json`), derived from the
//! handlers' `#[utoipa::path]` attributes and the JSON types of `model`, so it says what the
//! code does.

use axum::Json;
use utoipa::OpenApi;

use super::errors::{ErrorBody, ErrorDetail};
use super::model::{
    Capacity, Chunk, Chunks, ClusterStatus, Entry, FsckReport, Health, Listing, MasterMember,
    Masters, RenameRequest, Replica, Server, ServerCounts, Stat,
};
use super::{cluster, dirs, files};

/// Every route and type of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "dfs master API",
        description = "The cluster and its files over HTTP. No authentication yet: expose it \
                       on a trusted network only."
    ),
    paths(
        cluster::health,
        cluster::status,
        cluster::servers,
        cluster::decommission,
        cluster::masters,
        cluster::fsck,
        dirs::list,
        dirs::mkdir,
        dirs::rmdir,
        dirs::rename,
        files::stat,
        files::chunks,
        files::download,
        files::head,
        files::upload,
        files::delete,
        document,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        Stat,
        Entry,
        Listing,
        RenameRequest,
        Replica,
        Chunk,
        Chunks,
        Server,
        ServerCounts,
        Capacity,
        ClusterStatus,
        MasterMember,
        Masters,
        FsckReport,
        Health,
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "cluster",
    responses((status = 200, description = "this document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
