"""user-cache-updater-2.0's rules: which events touch a user's hash, and what the hash holds.

Reference: ``user-org-jobs/user-cache-updater-2.0`` (``UserCacheUpdaterFunctionV2``,
``UserMetadataUpdater``, ``FrameworkCacheHandler``) and jobs-core ``DataCache``. A user AUDIT
event (``object.type`` User, ``edata.state`` Create/Update/Delete[d]) updates the hash
``user:<id>`` in Redis db ``redis-meta.database.userstore.id`` (12):

* from the event (any producer): ``usersignintype`` (``Self-Signed-In`` / ``Validated`` from the
  ``SignupType`` cdata) and ``userlogintype`` (the ``UserRole`` cdata id);
* for the registered-user producer (``context.pdata.pid == learner-service``) also from the user
  read API: personal fields, ``framework_*``, locations, user types. Before writing, stale
  location fields and all ``framework_*`` fields are removed, so the hash mirrors the profile.

Pure: the user read API is reached through a ``UserReader`` the caller passes in
(``pipelines.transforms.user_cache`` wires ``pipelines.io.user_api``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines.domain.errors import Skip
from pipelines.domain.javafmt import gson_string, java_hashmap_order

KEY_PREFIX = "user:"
STATES = {"CREATE", "CREATED", "UPDATE", "UPDATED", "DELETE", "DELETED"}
DELETE_STATES = {"DELETE", "DELETED"}
BLOCKED_ERR = "UOS_USRRED0006"
REMOVABLE_FIELDS = ("state", "district", "block", "cluster", "schooludisecode", "schoolname")


class UserReadFailed(Exception):
    """The user read API gave no usable answer (after retries): the event is dead-lettered."""


@dataclass(frozen=True)
class UserFieldRules:
    """The reference keys that decide what is cached (``UserCacheUpdaterConfigV2``)."""

    regd_producer_pid: str = "learner-service"
    self_signin_types: tuple[str, ...] = ("google", "self")
    validated_types: tuple[str, ...] = ("sso",)
    self_signin_key: str = "Self-Signed-In"
    validated_key: str = "Validated"
    read_api_errors: tuple[str, ...] = ("CLIENT_ERROR",)
    removable_fields: tuple[str, ...] = REMOVABLE_FIELDS


@dataclass
class Update:
    """What to do to one user's hash."""

    user_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    regd: bool = False  # clear stale location/framework fields first
    delete: bool = False  # remove the whole hash


class UserReader(Protocol):
    """What the rules need from the user and framework read APIs."""

    def read_user(self, user_id: str) -> tuple[str, dict | None]: ...

    def categories(self, framework_id: str) -> list[str]: ...


# ----------------------------------------------------------------------------- event reading


def user_id_of(event: dict) -> str | None:
    obj = event.get("object")
    if not isinstance(obj, dict):
        return None
    t, oid = obj.get("type"), obj.get("id")
    if isinstance(t, str) and t.lower() == "user" and isinstance(oid, str) and oid.strip():
        return oid
    return None


def state_of(event: dict) -> str | None:
    edata = event.get("edata")
    state = edata.get("state") if isinstance(edata, dict) else None
    return state if isinstance(state, str) else None


def producer_pid(event: dict) -> str | None:
    pdata = (event.get("context") or {}).get("pdata") if isinstance(event.get("context"), dict) else None
    pid = pdata.get("pid") if isinstance(pdata, dict) else None
    return pid if isinstance(pid, str) else None


def cdata_id(event: dict, cdata_type: str) -> str | None:
    """The id of the last ``context.cdata`` entry of this type (case-insensitive), as the reference.

    Entries without a type or id are ignored (the reference threw on a missing type).
    """
    ctx = event.get("context")
    cdata = ctx.get("cdata") if isinstance(ctx, dict) else None
    found = None
    for entry in cdata if isinstance(cdata, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("type"), str) \
                and entry["type"].lower() == cdata_type.lower() and entry.get("id") is not None:
            found = str(entry["id"])
    return found


def general_info(event: dict, s: UserFieldRules) -> dict[str, str]:
    out: dict[str, str] = {}
    signin = cdata_id(event, "SignupType")
    if signin is not None:
        if signin in s.self_signin_types:
            out["usersignintype"] = s.self_signin_key
        if signin in s.validated_types:
            out["usersignintype"] = s.validated_key
    login = cdata_id(event, "UserRole")
    if login is not None:
        out["userlogintype"] = login
    return out


def classify(event: dict) -> tuple[str, str]:
    """``(user_id, STATE)`` or ``Skip``: not a user event, no state, or an unknown state."""
    uid = user_id_of(event)
    if uid is None:
        raise Skip("object is not a user")
    state = state_of(event)
    if state is None:
        raise Skip("edata.state is missing")
    if state.upper() not in STATES:
        raise Skip(f"unknown state {state!r}")
    return uid, state.upper()


def user_events(event: dict) -> list[dict]:
    """``ValidateEvents``' parser: a user event passes whole, anything else is ``Skip``."""
    classify(event)
    return [event]


# ----------------------------------------------------------------------------- profile -> fields


def usertype_strings(profile_user_types: list) -> tuple[str, str]:
    """Distinct non-empty ``type`` and ``subType`` values, comma-joined, in first-seen order."""
    types: list[str] = []
    subtypes: list[str] = []
    for ut in profile_user_types:
        if not isinstance(ut, dict):
            continue
        t, st = ut.get("type"), ut.get("subType")
        if isinstance(t, str) and t and t not in types:
            types.append(t)
        if isinstance(st, str) and st and st not in subtypes:
            subtypes.append(st)
    return ",".join(types), ",".join(subtypes)


def _gson_field_text(value: Any) -> str:
    """A JSON value read into a Java ``String`` field by Gson: scalars as their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def gson_profile_user_types(profile_user_types: list) -> str:
    """``new Gson().toJson(profileUserTypes)`` of the reference, exactly.

    The reference reads ``profileUserTypes`` as ``List<HashMap<String, String>>`` and writes it
    back with a default Gson: keys in ``HashMap`` order (``subType`` before ``type``),
    null-valued keys left out, strings HTML-safe escaped (``<`` as ``\\u003c``), no spaces.
    The shared cache readers (``DataCache``) and reports compare this text.
    """
    items = []
    for ut in profile_user_types:
        if ut is None:
            items.append("null")
        elif isinstance(ut, dict):
            present = [k for k in ut if isinstance(k, str) and ut[k] is not None]
            members = [f"{gson_string(k)}:{gson_string(_gson_field_text(ut[k]))}" for k in java_hashmap_order(present)]
            items.append("{" + ",".join(members) + "}")
    return "[" + ",".join(items) + "]"


def registered_info(response: dict, categories: Any) -> dict[str, Any]:
    """User read ``result.response`` -> cache fields (values not yet stringified).

    ``categories(framework_id)`` returns the framework's category codes.
    """
    out: dict[str, Any] = {}
    framework = response.get("framework")
    if isinstance(framework, dict) and framework:
        ids = framework.get("id")
        if isinstance(ids, list) and ids:
            fw_id = ids[0]
            out["framework_id"] = fw_id
            for code in categories(fw_id):
                value = framework.get(code)
                if value:
                    out[f"framework_{code}"] = value
    locations = response.get("userLocations")
    for loc in locations if isinstance(locations, list) else []:
        if not isinstance(loc, dict):
            continue
        ltype = loc.get("type") if isinstance(loc.get("type"), str) else ""
        if ltype.lower() == "school":
            out["schoolname"] = loc.get("name", "")
            out["schooludisecode"] = loc.get("code", "")
        else:
            out[ltype] = loc.get("name", "")
    put = response.get("profileUserTypes")
    if isinstance(put, list) and put:
        out["usertype"], out["usersubtype"] = usertype_strings(put)
        out["profileusertypes"] = gson_profile_user_types(put)
    root_org = response.get("rootOrg") if isinstance(response.get("rootOrg"), dict) else {}
    out.update({
        "firstname": response.get("firstName"), "lastname": response.get("lastName"),
        "language": response.get("language"), "orgname": root_org.get("orgName"),
        "rootorgid": response.get("rootOrgId"), "phone": response.get("encPhone"),
        "email": response.get("encEmail"), "status": response.get("status"),
        "userid": response.get("userId") or response.get("id"),
    })
    return out


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        # DataCache reads a value starting with "[" back as a JSON array; the reference escapes
        # brackets in plain strings so they never are.
        return value.replace("[", "\\[").replace("]", "\\]")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stringify(data: dict[str, Any]) -> dict[str, str]:
    """Hash values: strings as-is (brackets escaped), null as "", anything else as compact JSON."""
    return {k: _value_text(v) for k, v in data.items()}


def stale_fields(existing: dict[str, str], new: dict[str, str], removable: tuple[str, ...]) -> list[str]:
    """Fields to HDEL before the HSET of a registered user's update.

    Removable (location) fields with a non-empty value that the new data lacks, and every
    ``framework_*`` field the new data does not rewrite (the reference deleted all of them and
    wrote the new ones back, non-atomically).
    """
    out = [k for k, v in existing.items() if k in removable and v != "" and k not in new]
    out += [k for k in existing if "framework_" in k and k not in new]
    return sorted(set(out))


def read_outcome(status: int, body: Any, api_errors: tuple[str, ...]) -> tuple[str, dict | None]:
    """User read answer -> ("ok", response) | ("blocked", None) | ("missing", None).

    Raises ``UserReadFailed`` for any other answer (the reference threw, restarting the job).
    """
    if isinstance(body, dict):
        code = str(body.get("responseCode") or "").upper()
        result = body.get("result")
        if code == "OK" and isinstance(result, dict) and isinstance(result.get("response"), dict):
            return "ok", result["response"]
        err = str((body.get("params") or {}).get("err") or "") if isinstance(body.get("params"), dict) else ""
        if code in {e.upper() for e in api_errors} and err.upper() == BLOCKED_ERR:
            return "blocked", None
        if status == 404 or code == "RESOURCE_NOT_FOUND":
            return "missing", None
    raise UserReadFailed(f"user read answered {status}: {str(body)[:200]}")


# ----------------------------------------------------------------------------- plans


def plan_event(event: dict, s: UserFieldRules, reader: UserReader | None) -> tuple[Update | None, str | None]:
    """Event -> (Update or None when there is nothing to write, user read outcome or None).

    Delete/Deleted for a user the read API reports blocked/deleted or unknown removes the hash
    (the reference kept the deleted user's data forever). An unknown user on any other state is a
    failure (dead-lettered; the reference threw and restarted the job).
    """
    uid, state = classify(event)
    data: dict[str, Any] = dict(general_info(event, s))
    api = None
    regd = producer_pid(event) == s.regd_producer_pid
    if regd:
        api, response = reader.read_user(uid)
        if api == "ok":
            data.update(registered_info(response, reader.categories))
        elif state in DELETE_STATES:
            return Update(uid, delete=True), api
        elif api == "missing":
            raise UserReadFailed(f"user read: user {uid} not found")
    if not data:
        return None, api
    return Update(uid, data, regd=api == "ok"), api


def plan_refresh(user_id: str, reader: UserReader) -> tuple[Update | None, str]:
    """Batch refresh of one user from the read API (no event: no sign-in/login fields).

    An unknown user's hash is removed; a blocked one is left as it is (skipped).
    """
    api, response = reader.read_user(user_id)
    if api == "ok":
        return Update(user_id, registered_info(response, reader.categories), regd=True), api
    if api == "missing":
        return Update(user_id, delete=True), api
    return None, api
