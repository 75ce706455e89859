"""A PTB ``BaseRequest`` on aiohttp: the same contract as PTB's ``HTTPXRequest``, less CPU.

Measured against the local Bot API emulator (``bench/http_client.py``), a ``send_message``
costs markedly less CPU through aiohttp than through httpx/httpcore/anyio/h11, and the HTTP
stack is the largest share of the bot's CPU per update (docs/performance.md).

Use one instance per role, as PTB does with its defaults::

    ApplicationBuilder()
    .request(AiohttpRequest(connection_pool_size=256, connect_timeout=10, read_timeout=15,
                            pool_timeout=5))
    .get_updates_request(AiohttpRequest(connection_pool_size=1))

(the builder's ``*_timeout`` setters cannot be combined with a request instance.)

Behaviour, compared with ``HTTPXRequest``:

* Parameters go as ``application/x-www-form-urlencoded`` (``RequestData.json_parameters``),
  requests with files as ``multipart/form-data`` (the parameters as fields, the files as
  parts with their file names and MIME types); file names are sent as UTF-8, as httpx does.
* ``connection_pool_size`` bounds the requests in flight (and so the open connections);
  ``pool_timeout`` bounds the wait for a free slot: :class:`telegram.error.TimedOut`, the
  request not sent.
* ``connect_timeout`` bounds establishing a connection, ``read_timeout`` each wait for
  response data (it starts once the request has been written): ``TimedOut``.
* aiohttp has no per-write timeout. Requests without files are small and go to the socket
  buffer at once; a request that uploads files gets an overall deadline of
  ``connect_timeout + write_timeout + read_timeout`` (``media_write_timeout`` unless a
  ``write_timeout`` is passed), ``TimedOut`` past it.
* Connection failures (refused, reset, closed mid-response, bad HTTP) are
  :class:`telegram.error.NetworkError`, with the aiohttp exception's class name.
* Certificates are verified against certifi's bundle when certifi is installed (httpx, PTB's
  dependency, installs it), as httpx does, else against the system's.
* No cookies are kept; proxy settings come only from ``proxy`` (no environment variables).
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
from typing import Any
from urllib.parse import urlencode

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest"]

_LOGGER = logging.getLogger(__name__)

_FORM = "application/x-www-form-urlencoded"
_FORM_HEADERS = {"Content-Type": _FORM}
#: file names in a part's header as httpx writes them (HTML5 form encoding): a quote and the
#: control characters percent-encoded; aiohttp (``quote_fields=False``) doubles backslashes
_FILENAME_ESCAPES = str.maketrans(
    {'"': "%22", **{chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}}
)
#: aiohttp's threshold (``payload.TOO_LARGE_BYTES_BODY``) above which a ``bytes`` part makes
#: it warn (ResourceWarning) that writing it at once may block the loop: sent from a buffer
_LARGE_BYTES = 1 << 20
_POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* "
    "sent to Telegram. Consider adjusting the connection pool size or the pool timeout."
)


def _ssl_context() -> ssl.SSLContext:
    """Verify against certifi's bundle when it is installed (as httpx does), else the
    system's default store."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx, a PTB dependency
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class AiohttpRequest(BaseRequest):
    """Implementation of :class:`telegram.request.BaseRequest` using aiohttp.

    Args:
        connection_pool_size: Requests in flight at once (and connections open) at most.
            PTB's defaults: ``256`` for :meth:`~telegram.ext.ApplicationBuilder.request`,
            ``1`` for :meth:`~telegram.ext.ApplicationBuilder.get_updates_request`.
        read_timeout: Seconds to wait for response data. Defaults to ``5``.
        write_timeout: Accepted for parity with ``HTTPXRequest`` and not applied: aiohttp
            has no write timeout, and a request without files goes to the socket buffer at
            once (a ``write_timeout`` passed to a call that uploads files is, see below).
            Defaults to ``5``.
        connect_timeout: Seconds to establish a connection. Defaults to ``5``.
        pool_timeout: Seconds to wait for a free slot when ``connection_pool_size`` requests
            are in flight. Defaults to ``1``.
        media_write_timeout: For requests that upload files: part of their overall
            deadline, ``connect_timeout + media_write_timeout + read_timeout`` (the call's
            ``write_timeout`` instead when it passes one). Defaults to ``20``.
        proxy: An ``http://`` proxy URL for every request, or ``None``.
        keepalive_timeout: Seconds an idle connection is kept for reuse. Defaults to ``15``.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_keepalive_timeout",
        "_media_write_timeout",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_semaphore",
        "_session",
        "_timeouts",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        proxy: str | None = None,
        keepalive_timeout: float = 15.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy
        self._keepalive_timeout = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        # ClientTimeout objects by (connect, read, total): nearly every call uses the defaults
        self._timeouts: dict[
            tuple[float | None, float | None, float | None], aiohttp.ClientTimeout
        ] = {}

    @property
    def read_timeout(self) -> float | None:
        """See :attr:`telegram.request.BaseRequest.read_timeout`."""
        return self._read_timeout

    @property
    def connection_pool_size(self) -> int:
        """Requests in flight at once, at most."""
        return self._connection_pool_size

    async def initialize(self) -> None:
        """See :meth:`telegram.request.BaseRequest.initialize`: open the session (in the
        running loop). Idempotent; a shut-down instance can be initialized again."""
        if self._session is not None and not self._session.closed:
            return
        connector = aiohttp.TCPConnector(
            limit=self._connection_pool_size,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_timeout,
            ssl=_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            raise_for_status=False,
        )
        self._semaphore = asyncio.Semaphore(self._connection_pool_size)

    async def shutdown(self) -> None:
        """See :meth:`telegram.request.BaseRequest.shutdown`: close every connection."""
        session, self._session = self._session, None
        if session is None or session.closed:
            _LOGGER.debug("This AiohttpRequest is already shut down. Returning.")
            return
        await session.close()

    def _timeout(
        self, connect: float | None, read: float | None, total: float | None
    ) -> aiohttp.ClientTimeout:
        key = (connect, read, total)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=total, connect=connect, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < 64:  # getUpdates varies read; callers may vary any
                self._timeouts[key] = timeout
        return timeout

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See :meth:`telegram.request.BaseRequest.do_request`."""
        session, semaphore = self._session, self._semaphore
        if session is None or semaphore is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")

        if isinstance(read_timeout, DefaultValue):
            read_timeout = self._read_timeout
        if isinstance(connect_timeout, DefaultValue):
            connect_timeout = self._connect_timeout
        if isinstance(pool_timeout, DefaultValue):
            pool_timeout = self._pool_timeout

        data: Any = None
        headers: dict[str, str] | None = None
        total: float | None = None
        if request_data is not None:
            if request_data.contains_files:
                data = self._multipart(request_data)
                if isinstance(write_timeout, DefaultValue):
                    write_timeout = self._media_write_timeout
                if (
                    connect_timeout is not None
                    and write_timeout is not None
                    and read_timeout is not None
                ):
                    total = connect_timeout + write_timeout + read_timeout
            else:
                parameters = request_data.json_parameters
                if parameters:  # as RequestData.url_encoded_parameters(), computed once
                    data = urlencode(parameters).encode()
                    headers = _FORM_HEADERS
        timeout = self._timeout(connect_timeout, read_timeout, total)

        if semaphore.locked():
            try:
                async with asyncio.timeout(pool_timeout):
                    await semaphore.acquire()
            except TimeoutError as err:
                raise TimedOut(message=_POOL_TIMEOUT_MESSAGE) from err
        else:
            await semaphore.acquire()
        try:
            async with session.request(
                method, url, data=data, headers=headers, timeout=timeout, proxy=self._proxy
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:
            # ConnectionTimeoutError, SocketTimeoutError (read) and the overall deadline
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            semaphore.release()

    @staticmethod
    def _multipart(request_data: RequestData) -> aiohttp.FormData:
        """The parameters as form fields, the files as parts (UTF-8 file names, as httpx)."""
        form = aiohttp.FormData(quote_fields=False)
        for name, value in request_data.json_parameters.items():
            form.add_field(name, value)
        for name, (filename, content, mimetype) in request_data.multipart_data.items():
            if isinstance(content, bytes) and len(content) > _LARGE_BYTES:
                content = io.BytesIO(content)  # aiohttp warns about large raw bytes bodies
            form.add_field(
                name,
                content,
                filename=filename.translate(_FILENAME_ESCAPES),
                content_type=mimetype,
            )
        return form
