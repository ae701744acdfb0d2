//! Groups: named filter expressions usable on the service graph and in searches.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::scope::GroupScope;
use super::{ApiError, AppState, parse_body};
use crate::group::{GroupName, arn_of};
use crate::store::StoredGroup;

fn group_json(g: &StoredGroup) -> Value {
    let mut v = json!({ "GroupName": g.name, "GroupARN": arn_of(&g.name) });
    if let Some(f) = &g.filter_expression {
        v["FilterExpression"] = Value::String(f.clone());
    }
    v["InsightsConfiguration"] = g
        .insights
        .clone()
        .unwrap_or_else(|| json!({ "InsightsEnabled": false, "NotificationsEnabled": false }));
    v
}

/// What a group operation changes besides the group it names (named by its [`GroupScope`]).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupRequest {
    #[serde(default)]
    filter_expression: Option<String>,
    #[serde(default)]
    insights_configuration: Option<Value>,
}

/// The group an operation is about; the scope layer has already refused a request without one.
fn named(scope: &GroupScope) -> Result<&GroupName, ApiError> {
    scope
        .group()
        .ok_or_else(|| ApiError::InvalidRequest("GroupName or GroupARN is required".to_owned()))
}

fn check_filter(text: Option<&str>) -> Result<(), ApiError> {
    if let Some(t) = text {
        crate::filter::parse(t)
            .map_err(|e| ApiError::InvalidRequest(format!("invalid filter expression: {e}")))?;
    }
    Ok(())
}

/// `POST /CreateGroup`.
pub async fn create_group(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: GroupRequest = parse_body(&body)?;
    let name = named(&scope)?;
    if name.is_default() {
        return Err(ApiError::InvalidRequest(
            "Default is a reserved group name".to_owned(),
        ));
    }
    let name = name.as_str().to_owned();
    check_filter(req.filter_expression.as_deref())?;
    let group = StoredGroup {
        name,
        filter_expression: req.filter_expression,
        insights: req.insights_configuration,
    };
    state.store.put_group(group.clone(), true).await?;
    Ok(Json(json!({ "Group": group_json(&group) })))
}

/// `POST /Groups`.
pub async fn get_groups(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let groups = state.store.groups().await?;
    Ok(Json(json!({
        "Groups": groups.iter().map(group_json).collect::<Vec<_>>(),
    })))
}

async fn find(state: &AppState, name: &str) -> Result<StoredGroup, ApiError> {
    state
        .store
        .groups()
        .await?
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| ApiError::InvalidRequest(format!("group {name:?} does not exist")))
}

/// `POST /GetGroup`.
pub async fn get_group(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let _: GroupRequest = parse_body(&body)?;
    let group = find(&state, named(&scope)?.as_str()).await?;
    Ok(Json(json!({ "Group": group_json(&group) })))
}

/// `POST /UpdateGroup`.
pub async fn update_group(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: GroupRequest = parse_body(&body)?;
    let mut group = find(&state, named(&scope)?.as_str()).await?;
    check_filter(req.filter_expression.as_deref())?;
    if req.filter_expression.is_some() {
        group.filter_expression = req.filter_expression;
    }
    if req.insights_configuration.is_some() {
        group.insights = req.insights_configuration;
    }
    state.store.put_group(group.clone(), false).await?;
    Ok(Json(json!({ "Group": group_json(&group) })))
}

/// `POST /DeleteGroup`.
pub async fn delete_group(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let _: GroupRequest = parse_body(&body)?;
    state
        .store
        .delete_group(named(&scope)?.as_str().to_owned())
        .await?;
    Ok(Json(json!({})))
}
