//! Rooms as a service: creating and deleting a room writes the room and its audit event in
//! one transaction, whoever asks — the REST API, a phone's keypad (`*401*`, `*402*`) or the
//! server itself (a keypad room released when its meeting ends). Also how a dialled number
//! finds its room.

use conclave_store::model::{AuditEvent, Room};
use conclave_store::{Conn, Store, new_id, now_ms, repo};
use std::net::IpAddr;

/// Who acts on a room, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    /// The user (`None`: the server itself).
    pub user_id: Option<&'a str>,
    /// The name the log shows.
    pub name: &'a str,
    /// Where the request came from.
    pub source: IpAddr,
    /// The API key used, when it was one.
    pub api_key_id: Option<&'a str>,
}

impl Author<'static> {
    /// The server acting on its own.
    pub fn system() -> Author<'static> {
        Author {
            user_id: None,
            name: "system",
            source: IpAddr::from([127, 0, 0, 1]),
            api_key_id: None,
        }
    }
}

/// The audit event of an action on a room, the same for every channel.
pub fn audit_event(author: &Author<'_>, action: &str, room: &Room, outcome: &str) -> AuditEvent {
    let mut detail = serde_json::json!({ "number": room.number, "name": room.name });
    if let (Some(key), Some(map)) = (author.api_key_id, detail.as_object_mut()) {
        map.insert("api_key_id".into(), key.into());
    }
    AuditEvent {
        id: new_id(),
        tenant_id: Some(room.tenant_id.clone()),
        actor_id: author.user_id.map(str::to_owned),
        actor_name: author.name.to_owned(),
        action: action.to_owned(),
        target_type: "room".into(),
        target_id: Some(room.id.clone()),
        outcome: outcome.to_owned(),
        source: author.source.to_string(),
        detail,
        at: now_ms(),
    }
}

/// Creates a room and its audit event in one transaction (a number already taken in the
/// tenant is a unique violation: nothing is written).
pub async fn create(store: &Store, author: &Author<'_>, room: &Room) -> conclave_store::Result<()> {
    let mut tx = store.begin().await?;
    repo::rooms::insert(&mut tx, room).await?;
    repo::audit::insert(&mut tx, &audit_event(author, "createRoom", room, "ok")).await?;
    Ok(tx.commit().await?)
}

/// Changes a room and records it, in one transaction.
pub async fn update(store: &Store, author: &Author<'_>, room: &Room) -> conclave_store::Result<()> {
    let mut tx = store.begin().await?;
    repo::rooms::update(&mut tx, room).await?;
    repo::audit::insert(&mut tx, &audit_event(author, "updateRoom", room, "ok")).await?;
    Ok(tx.commit().await?)
}

/// Deletes a room and records it, in one transaction. A live meeting in it keeps its members;
/// nobody new finds the room.
pub async fn delete(store: &Store, author: &Author<'_>, room: &Room) -> conclave_store::Result<()> {
    let mut tx = store.begin().await?;
    repo::rooms::delete(&mut tx, &room.id).await?;
    repo::audit::insert(&mut tx, &audit_event(author, "deleteRoom", room, "ok")).await?;
    Ok(tx.commit().await?)
}

/// A room made from the keypad served its one meeting: the server deletes it.
pub async fn release(store: &Store, room: &Room) -> conclave_store::Result<()> {
    delete(store, &Author::system(), room).await?;
    tracing::info!(room = room.number, "keypad room released");
    Ok(())
}

/// Records a refused action on a room.
pub async fn denied(conn: &mut Conn, author: &Author<'_>, action: &str, room: &Room) {
    if let Err(err) = repo::audit::insert(conn, &audit_event(author, action, room, "denied")).await
    {
        tracing::warn!(%err, action, "cannot record a denied action");
    }
}

/// The room a call dials: by the tenant that owns the request's domain, otherwise the one room
/// on the installation with that number.
pub async fn find_dialled(store: &Store, number: &str, domain: &str) -> Option<Room> {
    let mut conn = store.conn().await.ok()?;
    match repo::tenants::get_by_sip_domain(&mut conn, domain).await {
        Ok(Some(tenant)) => repo::rooms::get_by_number(&mut conn, &tenant.id, number)
            .await
            .ok()
            .flatten(),
        Ok(None) => {
            let mut rooms = repo::rooms::find_by_number(&mut conn, number).await.ok()?;
            (rooms.len() == 1).then(|| rooms.remove(0))
        }
        Err(err) => {
            tracing::warn!(%err, "room lookup failed");
            None
        }
    }
}
