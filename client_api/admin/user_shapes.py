"""What the user admin endpoints read and write: the request bodies checked as
Synapse checks them, and the JSON of users, devices, media and pushers."""

from __future__ import annotations

from typing import Any

from homeserver.admin.users import (
    MAX_PASSWORD_LENGTH,
    USER_TYPES,
    AccountChanges,
    AdminUserRow,
    DeviceRecord,
    MediaRecord,
    PusherRecord,
)
from homeserver.errors import BadJson, MatrixError, MissingParam
from homeserver.http.body import get_str


def user_row_json(row: AdminUserRow) -> dict[str, Any]:
    """One user of the listing."""
    return {
        "name": row.user_id,
        "is_guest": row.is_guest,
        "admin": row.is_admin,
        "user_type": row.user_type,
        "deactivated": row.deactivated,
        "erased": row.erased,
        "shadow_banned": row.shadow_banned,
        "displayname": row.displayname,
        "avatar_url": row.avatar_url,
        "creation_ts": row.created_ts,
        "last_seen_ts": row.last_seen_ts,
        "locked": row.locked,
    }


def device_json(device: DeviceRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_id": device.device_id,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_user_agent": device.last_seen_user_agent,
        "last_seen_ts": device.last_seen_ts,
        "user_id": device.user_id,
        "dehydrated": False,
    }
    if device.display_name is not None:
        body["display_name"] = device.display_name
    return body


def media_json(record: MediaRecord) -> dict[str, Any]:
    return {
        "media_id": record.media_id,
        "media_type": record.content_type,
        "media_length": record.size,
        "upload_name": record.upload_name,
        "created_ts": record.created_ts,
        "last_access_ts": record.last_access_ts,
        # who quarantined is not recorded, only whether the media is
        "quarantined_by": None,
        "quarantined": record.quarantined,
        "safe_from_quarantine": False,
    }


def pusher_json(record: PusherRecord) -> dict[str, Any]:
    return {
        "app_display_name": record.app_display_name,
        "app_id": record.app_id,
        "data": record.data,
        "device_display_name": record.device_display_name,
        "kind": record.kind,
        "lang": record.lang,
        "profile_tag": record.profile_tag or "",
        "pushkey": record.pushkey,
    }


def _flag(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise MatrixError(400, "M_UNKNOWN", f"'{key}' parameter is not of type boolean")
    return value


def _pairs(body: dict[str, Any], key: str, first: str, second: str) -> list[tuple[str, str]] | None:
    entries = body.get(key)
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise BadJson(f"'{key}' must be an array of objects")
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        for name in (first, second):
            if name not in entry:
                raise MissingParam(f"Missing params: ['{name}']")
            if not isinstance(entry[name], str):
                raise BadJson(f"'{name}' must be a string")
        pairs.append((entry[first], entry[second]))
    return pairs


def account_changes(body: dict[str, Any]) -> AccountChanges:
    """The body of PUT /_synapse/admin/v2/users/{userId}, checked as Synapse does."""
    threepids = _pairs(body, "threepids", "medium", "address")
    external_ids = _pairs(body, "external_ids", "auth_provider", "external_id")
    user_type = body.get("user_type")
    if user_type is not None and user_type not in USER_TYPES:
        raise MatrixError(400, "M_UNKNOWN", "Invalid user type")
    admin = body.get("admin")
    if admin is not None and not isinstance(admin, bool):
        raise BadJson("Param 'admin' must be a boolean, if given")
    password = body.get("password")
    if password is not None and (
        not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH
    ):
        raise MatrixError(400, "M_UNKNOWN", "Invalid password")
    logout_devices = _flag(body, "logout_devices")
    deactivated = _flag(body, "deactivated")
    locked = _flag(body, "locked")
    displayname = get_str(body, "displayname", None)
    avatar_url = get_str(body, "avatar_url", None)
    if avatar_url and not avatar_url.startswith("mxc://"):
        raise BadJson("avatar_url must be an mxc:// URI string")
    return AccountChanges(
        password=password,
        logout_devices=True if logout_devices is None else logout_devices,
        displayname=displayname,
        has_displayname="displayname" in body,
        avatar_url=avatar_url,
        has_avatar_url="avatar_url" in body,
        admin=admin,
        deactivated=deactivated,
        locked=locked,
        user_type=user_type,
        has_user_type="user_type" in body,
        threepids=None if threepids is None else set(threepids),
        external_ids=external_ids,
    )
