"""Cross-signing keys and the signatures users upload over keys.

Spec: client-server "Cross-signing" (``POST /keys/device_signing/upload``,
``POST /keys/signatures/upload``, "Key and signature security").

Signatures over a user's keys are kept apart from the keys and merged in by
``/keys/query`` for the viewers allowed to see them (:func:`visible_signatures`):
signatures made by the key's owner, and those made by the viewer themself. A
signature by a user-signing key is thus seen only by its signer.

Signing a remote user's master key needs that key: federation sets the hook
``remote_master_key(user_id) -> the master key JSON or None``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from homeserver.e2ee.device_lists import DeviceListService
from homeserver.e2ee.validation import (
    InvalidSignature,
    check_cross_signing_key,
    is_signed_by,
    public_key_of,
    without_signatures,
)
from homeserver.errors import Forbidden, MatrixError, MissingParam, NotFound
from homeserver.events import server_name_of
from storage.database import Transaction
from storage.e2e_keys import StoredSignature
from storage.stores import Stores

RemoteMasterKey = Callable[[str], Awaitable[dict[str, Any] | None]]

# request field -> (stored key type, required usage)
KEY_FIELDS = {
    "master_key": "master",
    "self_signing_key": "self_signing",
    "user_signing_key": "user_signing",
}


def visible_signatures(
    signatures: Iterable[StoredSignature], viewer: str | None
) -> dict[str, dict[str, dict[str, str]]]:
    """target device ID (or master public key) -> signer -> key ID -> signature,
    keeping what ``viewer`` may see (spec "Key and signature security")."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for sig in signatures:
        if sig.signer_user_id != sig.target_user_id and sig.signer_user_id != viewer:
            continue
        by_signer = out.setdefault(sig.target_device_id, {})
        by_signer.setdefault(sig.signer_user_id, {})[sig.key_id] = sig.signature
    return out


def _failure(exc: MatrixError) -> dict[str, Any]:
    return {"errcode": exc.errcode, "error": exc.message}


class CrossSigningService:
    def __init__(self, server_name: str, stores: Stores, device_lists: DeviceListService) -> None:
        self._server_name = server_name
        self._stores = stores
        self._device_lists = device_lists
        self.remote_master_key: RemoteMasterKey | None = None

    # -- keys -------------------------------------------------------------------------

    @staticmethod
    def keys_of_request(body: Mapping[str, Any], user_id: str) -> dict[str, dict[str, Any]]:
        """The cross-signing keys in a request body by key type, shape-checked."""
        keys: dict[str, dict[str, Any]] = {}
        for field, key_type in KEY_FIELDS.items():
            value = body.get(field)
            if value is None:
                continue
            check_cross_signing_key(value, user_id, key_type, field)
            keys[key_type] = value
        return keys

    async def needs_uia(self, user_id: str, keys: Mapping[str, dict[str, Any]]) -> bool:
        """UIA is needed unless there is no master key yet, or the request repeats
        exactly the stored keys (spec: ``/keys/device_signing/upload``)."""
        existing = await self._stores.e2e_keys.get_cross_signing_keys(user_id)
        if "master" not in existing:
            return False
        if keys.get("master") != existing["master"]:
            return True
        return any(existing.get(t) != k for t, k in keys.items())

    async def upload_keys(self, user_id: str, keys: Mapping[str, dict[str, Any]]) -> None:
        """Store new cross-signing keys (all or nothing) and record a device list change."""

        changes: list[int] = []

        async def txn_func(txn: Transaction) -> None:
            store = self._stores.e2e_keys
            changes.clear()
            existing = await store.get_cross_signing_keys_txn(txn, user_id)
            master = keys.get("master") or existing.get("master")
            if master is None and keys:
                raise MissingParam("No master key available")
            for key_type in ("self_signing", "user_signing"):
                key = keys.get(key_type)
                if key is None or master is None:
                    continue
                master_pub = public_key_of(master)
                if not is_signed_by(key, user_id, f"ed25519:{master_pub}", master_pub):
                    raise InvalidSignature(f"The {key_type} key is not signed by the master key")
            for key in keys.values():
                taken = await txn.fetchval(
                    "SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2",
                    user_id,
                    public_key_of(key),
                )
                if taken is not None:
                    raise Forbidden("Key ID in use")
            changed = {t: k for t, k in keys.items() if existing.get(t) != k}
            if not changed:
                return
            # A new master or self-signing key concerns everyone sharing a room with
            # the user (and other servers: ``m.signing_key_update``); a new
            # user-signing key only the user themself, who alone sees its signatures.
            only_for = None if changed.keys() & {"master", "self_signing"} else user_id
            position = await self._device_lists.record_change_txn(
                txn, user_id, [], only_for=only_for
            )
            changes.append(position)
            for key_type, key in changed.items():
                await store.set_cross_signing_key_txn(
                    txn, user_id, key_type, public_key_of(key), key, position
                )

        await self._stores.db.run_transaction("upload_cross_signing_keys", txn_func)
        await self._device_lists.announced(changes)

    # -- signatures -------------------------------------------------------------------

    async def upload_signatures(
        self, user_id: str, signed: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """``POST /keys/signatures/upload``: store the valid signatures; return failures."""
        failures: dict[str, dict[str, Any]] = {}
        accepted: list[StoredSignature] = []
        own = await self._stores.e2e_keys.get_cross_signing_keys(user_id)
        for target_user, by_key in signed.items():
            for key_id, obj in by_key.items():
                try:
                    if not isinstance(obj, dict):
                        raise MatrixError(400, "M_BAD_JSON", "Signed object must be an object")
                    if target_user == user_id:
                        accepted += await self._own_key_signatures(user_id, own, key_id, obj)
                    else:
                        accepted.append(
                            await self._other_user_signature(user_id, own, target_user, key_id, obj)
                        )
                except MatrixError as exc:
                    failures.setdefault(target_user, {})[key_id] = _failure(exc)
        if accepted:
            master = own.get("master")
            master_pub = None if master is None else public_key_of(master)
            changes = await self._stores.db.run_transaction(
                "upload_signatures",
                lambda txn: self._store_signatures_txn(txn, user_id, accepted, master_pub),
            )
            await self._device_lists.announced(changes)
        return failures

    async def _store_signatures_txn(
        self,
        txn: Transaction,
        user_id: str,
        accepted: list[StoredSignature],
        master_pub: str | None,
    ) -> list[int]:
        """Store the signatures and record what they change: a signature over one of
        the user's devices changes that device (an ``m.device_list_update``); one over
        their master key changes their cross-signing keys, recorded without a device
        like an upload of keys (an ``m.signing_key_update`` only, so no step of the
        device list sequence other servers follow by ``prev_id``); one over another
        user's master key is a change of that user that only the signer sees."""
        await self._stores.e2e_keys.add_signatures_txn(txn, accepted)
        own_targets = {s.target_device_id for s in accepted if s.target_user_id == user_id}
        devices = sorted(t for t in own_targets if t != master_pub)
        record = self._device_lists.record_change_txn
        changes: list[int] = []
        if devices:
            changes.append(await record(txn, user_id, devices))
        if master_pub is not None and master_pub in own_targets:
            changes.append(await record(txn, user_id, []))
        for target in sorted({s.target_user_id for s in accepted} - {user_id}):
            changes.append(await record(txn, target, [], only_for=user_id))
        return changes

    async def _own_key_signatures(
        self,
        user_id: str,
        own: Mapping[str, dict[str, Any]],
        key_id: str,
        obj: dict[str, Any],
    ) -> list[StoredSignature]:
        """Signatures over the user's own master key (by their devices) or over one of
        their devices (by their self-signing key)."""
        sigs = _signatures_of(obj, user_id)
        master = own.get("master")
        if master is not None and key_id == public_key_of(master):
            _same_key(obj, master)
            out: list[StoredSignature] = []
            for sig_key_id, sig in sigs.items():
                device_id = sig_key_id.removeprefix("ed25519:")
                if sig_key_id == f"ed25519:{key_id}" or device_id == sig_key_id:
                    continue
                device = await self._device_keys(user_id, device_id)
                device_ed = device.get("keys", {}).get(sig_key_id) if device else None
                if device_ed is None or not is_signed_by(obj, user_id, sig_key_id, device_ed):
                    raise InvalidSignature(f"Invalid signature by {sig_key_id}")
                out.append(StoredSignature(user_id, sig_key_id, user_id, key_id, sig))
            if not out:
                raise InvalidSignature("No signature by one of the user's devices")
            return out
        device = await self._device_keys(user_id, key_id)
        if device is None:
            raise NotFound("Unknown key")
        self_signing = own.get("self_signing")
        if self_signing is None:
            raise InvalidSignature("No self-signing key has been uploaded")
        ssk_pub = public_key_of(self_signing)
        ssk_key_id = f"ed25519:{ssk_pub}"
        _same_key(obj, device)
        if ssk_key_id not in sigs or not is_signed_by(obj, user_id, ssk_key_id, ssk_pub):
            raise InvalidSignature("Not signed by the self-signing key")
        return [StoredSignature(user_id, ssk_key_id, user_id, key_id, sigs[ssk_key_id])]

    async def _other_user_signature(
        self,
        user_id: str,
        own: Mapping[str, dict[str, Any]],
        target_user: str,
        key_id: str,
        obj: dict[str, Any],
    ) -> StoredSignature:
        """A signature by the user's user-signing key over another user's master key."""
        user_signing = own.get("user_signing")
        if user_signing is None:
            raise InvalidSignature("No user-signing key has been uploaded")
        master = await self._master_key_of(target_user)
        if master is None:
            raise NotFound("Unknown user or no master key")
        if key_id != public_key_of(master):
            raise InvalidSignature("Only other users' master keys can be signed")
        _same_key(obj, master)
        usk_pub = public_key_of(user_signing)
        usk_key_id = f"ed25519:{usk_pub}"
        sigs = _signatures_of(obj, user_id)
        if usk_key_id not in sigs or not is_signed_by(obj, user_id, usk_key_id, usk_pub):
            raise InvalidSignature("Not signed by the user-signing key")
        return StoredSignature(user_id, usk_key_id, target_user, key_id, sigs[usk_key_id])

    async def _master_key_of(self, user_id: str) -> dict[str, Any] | None:
        try:
            local = server_name_of(user_id) == self._server_name
        except ValueError:
            return None
        if local:
            return (await self._stores.e2e_keys.get_cross_signing_keys(user_id)).get("master")
        if self.remote_master_key is None:
            return None
        return await self.remote_master_key(user_id)

    async def _device_keys(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        async with self._stores.db.transaction("get_device_keys", readonly=True) as txn:
            return await self._stores.e2e_keys.get_device_keys_txn(txn, user_id, device_id)


def _signatures_of(obj: Mapping[str, Any], signer: str) -> dict[str, str]:
    sigs = obj.get("signatures")
    by_signer = sigs.get(signer) if isinstance(sigs, dict) else None
    if not isinstance(by_signer, dict) or not by_signer:
        raise InvalidSignature(f"No signature by {signer}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in by_signer.items()):
        raise MatrixError(400, "M_BAD_JSON", "Signatures must map key IDs to strings")
    return by_signer


def _same_key(signed: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """The signed object must be the stored key, apart from its signatures."""
    if without_signatures(signed) != without_signatures(stored):
        raise InvalidSignature("The signed object does not match the stored key")
