"""A raw-JSON Kubernetes client on top of the official `kubernetes` ApiClient.

The typed models cost ~23 MiB more per process and a pydantic round trip per
object (FACTS.md), and metalloid only needs dicts. So this borrows the official
client's configuration, authentication and connection pool (in-cluster service
account or kubeconfig) and speaks plain JSON: `request` for one call, `watch`
for a chunked watch stream. Errors come back as `ApiError` with the HTTP code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer (or a transport failure, `code` 0)."""

    def __init__(self, code: int, reason: str, message: str = "") -> None:
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")
        self.code, self.reason, self.message = code, reason, message


class RawClient:
    """Thin JSON calls through a `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: Any, *, user_agent: str | None = None) -> None:
        self.api_client = api_client
        if user_agent:
            api_client.user_agent = user_agent

    @classmethod
    def connect(
        cls, *, kubeconfig: str | None = None, host: str | None = None, user_agent: str | None = None
    ) -> RawClient:
        """In-cluster config when running in a pod (and no kubeconfig given), else the kubeconfig.

        `host` (tests, `kubectl proxy`) skips both: plain HTTP, no credentials.
        """
        import kubernetes.client
        import kubernetes.config

        configuration = kubernetes.client.Configuration()
        if host:
            configuration.host = host
        elif kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        # A failing API server must surface at once: our own loops back off (tenacity).
        configuration.retries = 0
        return cls(kubernetes.client.ApiClient(configuration), user_agent=user_agent)

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # closing a pool that never connected can raise; nothing to do
            pass

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = 10.0,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            _, url, headers, body, _ = self.api_client.param_serialize(
                method,
                path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        except ApiError:
            raise
        except Exception as exc:  # urllib3 / socket errors: the API server is unreachable
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from exc
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float = 10.0,
    ) -> Obj:
        response = self._open(method, path, query=query, body=body, content_type=content_type, timeout=timeout)
        try:
            data = response.read()
        except Exception as exc:
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from exc
        finally:
            response.response.release_conn()
        payload = _decode(data)
        if not 200 <= response.status < 300:
            raise ApiError(
                response.status, str(payload.get("reason") or response.reason), str(payload.get("message") or "")
            )
        return payload

    def watch(
        self, path: str, *, query: Mapping[str, str | int], timeout: float, on_open: Callable[[Any], None] | None = None
    ) -> Iterator[Obj]:
        """Yield watch events (dicts with `type` and `object`) until the server ends the stream.

        An ERROR event becomes an `ApiError` (410 Gone included). `on_open` gets
        the raw urllib3 response, so another thread can `shutdown()` it to stop.
        """
        response = self._open("GET", path, query={**query, "watch": "true"}, timeout=(5.0, timeout))
        raw = response.response
        if on_open is not None:
            on_open(raw)
        try:
            if not 200 <= response.status < 300:
                payload = _decode(raw.data)
                raise ApiError(
                    response.status, str(payload.get("reason") or response.reason), str(payload.get("message", ""))
                )
            buffer = b""
            for segment in raw.stream(amt=None, decode_content=False):
                buffer += segment
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code") or 500), str(status.get("reason")), str(status.get("message"))
                        )
                    yield event
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(0, "Unreachable", f"watch {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            raw.release_conn()
            raw.close()


def _decode(data: bytes | None) -> Obj:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {"message": data[:200].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"items": value}
