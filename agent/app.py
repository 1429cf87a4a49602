"""The agent process: wires config → drivers → pollers → ingest → buffer → uplink, and runs it.

Start order is back to front (buffer, uplink, ingest, pollers); stop order is front to back
(pollers, ingest flush, uplink clean shutdown, buffer), so a clean stop (SIGTERM) commits every
reading taken to the buffer, and whatever the broker has not acknowledged is sent after the next
start.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import drivers
from agent import __version__, contract
from agent import reload as config_reload
from agent import status as status_page
from agent.alarms.faults import FaultMapError
from agent.alarms.rules import alarm_facts
from agent.alarms.runtime import AlarmRuntime
from agent.broker_config import ConfigurationError, broker_settings, gateway_id
from agent.buffer_open import open_store
from agent.catalogue import alarm_command_meta, command_meta, deadbands, point_meta
from agent.commands import CommandHandler, Request
from agent.config import EXIT_CONFIG, SiteConfig
from agent.config.plan import ConnectionPlan
from agent.control.state import catalogue_points
from agent.control.wiring import for_agent
from agent.core.cache import Cache
from agent.core.model import clock
from agent.core.progress import PROGRESS, stall_floor_s
from agent.exception import ReportByException
from agent.mqtt import BrokerSettings
from agent.pipeline import Ingest
from agent.poller import ConnectionPoller
from agent.sdnotify import Notifier, watch
from agent.store import Store, StoreUnavailable
from agent.supervisor import Supervisor
from agent.uplink import STAGES as UPLINK_STAGES
from agent.uplink import Uplink, UplinkSettings

__all__ = [
    "Agent",
    "ConfigurationError",
    "broker_settings",
    "gateway_id",
    "open_store",
    "run",
]

log = logging.getLogger("agent")


class Agent:
    """The running agent. ``await Agent(config).run(stop_event)``."""

    def __init__(self, config: SiteConfig, load: Callable[[], SiteConfig] | None = None) -> None:
        self.config = config
        self.config_dir = config.config_dir or Path.cwd()
        """The configuration file's folder (``faultmaps/`` is found there)."""
        self.load = load
        """Re-reads the configuration for a reload (SIGHUP); ``None``: reload is refused."""
        self.reloaded: config_reload.Record | None = None
        """The last reload (shown in status)."""
        self._reload_wanted = asyncio.Event()
        self._units: dict[str, str | None] = {}
        """Point → unit for telemetry (the uplink holds this dict; a reload updates it)."""
        self._meta: list[dict[str, Any]] = []
        """Point descriptions for the retained ``meta`` (held by the uplink likewise)."""
        self.gateway = gateway_id(config)
        self.cache = Cache()
        self.pollers: list[ConnectionPoller] = []
        self.store: Store | None = None
        self.uplink: Uplink | None = None
        self.ingest: Ingest | None = None
        self.control: Any = None
        """The local control loop (``agent.control``), when ``control:`` is configured."""
        self.alarms: AlarmRuntime | None = None
        """The alarm stage (:mod:`agent.alarms`), when ``alarms:`` is configured."""
        self.supervisor: Supervisor | None = None
        """Runs every long-lived task (:mod:`agent.supervisor`), once :meth:`run` started."""
        self.notifier = Notifier()
        self.fatal: str | None = None
        """Why the agent stopped on its own (a task failed too often): :func:`run` exits 1."""
        self._stop: asyncio.Event | None = None

    def _give_up(self, reason: str) -> None:
        self.fatal = reason
        if self._stop is not None:
            self._stop.set()

    def request_reload(self) -> None:
        """Ask for a reload (the SIGHUP handler); done by the ``reload`` task."""
        self._reload_wanted.set()

    async def _reloader(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            await config_reload.reload(self)

    def status_line(self) -> str:
        """One line for systemd's ``STATUS=`` (:func:`agent.status.status_line`)."""
        return status_page.status_line(self)

    def _catalogue(self) -> list[Any]:
        return self.config.catalogue() + catalogue_points(self.config.control)  # ctl.*

    def set_catalogue(self) -> None:
        """Units, ``meta`` descriptions and deadbands from :attr:`config` (at start, and after
        a reload changed ``devices:``; the uplink and ingest hold these objects)."""
        catalogue = self._catalogue()
        self._units.clear()
        self._units.update({p.name: p.unit for p in catalogue})
        self._meta[:] = [point_meta(p) for p in catalogue]
        if self.ingest is not None:
            self.ingest.rbe.bands = deadbands(catalogue)

    def new_poller(self, cp: ConnectionPlan) -> ConnectionPoller:
        """A poller for connection ``cp``, feeding the ingest stage (not started)."""
        assert self.ingest is not None
        return ConnectionPoller(drivers.create(cp.spec), cp.groups, self.ingest.submit)

    def start_poller(self, p: ConnectionPoller) -> None:
        """Run ``p`` under the supervisor, with its heartbeat."""
        assert self.supervisor is not None
        PROGRESS.register(p.stage, p.stall_limit_s)
        self.supervisor.start(p.stage, p.run)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop cleanly."""
        cfg = self.config
        broker = broker_settings(cfg, self.gateway)  # before the buffer is opened
        store = self.store = await open_store(cfg)
        uplink = self.uplink = self._uplink(store, broker)
        ingest = self.ingest = Ingest(store, self.cache, uplink, clock, rbe=ReportByException({}))
        self.set_catalogue()
        self.pollers = [self.new_poller(cp) for cp in cfg.connections()]
        self.control = for_agent(self, ingest, store, uplink)  # None without control:
        if cfg.alarms is not None:
            self.alarms = await self._alarms(store, uplink, self._catalogue())
            ingest.observers.append(self.alarms.observe)

        async def reply(body: dict[str, Any], req: Request | None) -> None:
            corr, topic = (req.correlation, req.response_topic) if req else (None, None)
            await uplink.reply(body, corr, topic)

        commands = CommandHandler(
            clock, store.command_answer, store.remember_command, self.control, reply,
            alarms=self.alarms,
        )  # fmt: skip
        uplink.on_command = commands.handle
        self._stop = stop
        sup = self.supervisor = Supervisor(self._give_up)
        floor = stall_floor_s()
        PROGRESS.clear()
        # Each stage's stall limit: the floor plus its own longest legitimate wait (see
        # agent.core.progress). The uplink's three heartbeats (agent.uplink.STAGES): reconnect
        # backoff, MQTT connect, birth and meta (10 s each), and a sender waiting for PUBACKs
        # from a broker that went silent until the keep-alive declares it lost (1.5 x
        # keepalive_s, MQTT 3.1.1 §3.1.2.10).
        for name in UPLINK_STAGES:
            PROGRESS.register(
                name,
                floor
                + uplink.reconnect.backoff.cap_s
                + broker.connect_timeout_s
                + 20.0
                + 1.5 * broker.keepalive_s,
            )
        sup.start("uplink", uplink.run)
        PROGRESS.register("ingest", floor + 1.0)
        sup.start("ingest", ingest.run)
        for p in self.pollers:
            self.start_poller(p)
        sup.start("status-log", self._log_status)
        sup.start("reload", self._reloader)
        if self.control:
            PROGRESS.register("control", floor + 1.0)
            sup.start("control", self.control.run)
        sup.start("watchdog", lambda: watch(self.notifier, PROGRESS, self.status_line))
        if self.alarms is not None:
            sup.start("alarms", self.alarms.run)
        page = None
        if cfg.status is not None and cfg.status.enabled:
            page = await status_page.serve(self, cfg.status.host, cfg.status.port)
        # Start-up objects (config, catalogue, modules) live for ever: keep them out of the
        # garbage collector's generations, so full collections stay cheap and run often
        # enough to return what long runs would otherwise let pile up (soak benchmark).
        gc.freeze()
        log.info(
            "agent %s: site %s, gateway %s, %d connections, %d points, buffer %s",
            __version__,
            cfg.site.id,
            self.gateway,
            len(self.pollers),
            len(self._units),
            cfg.buffer.path,
        )
        self.notifier.send(READY="1", STATUS=self.status_line())
        try:
            await stop.wait()
        finally:
            log.info("stopping: pollers, then buffer flush, then uplink")
            self.notifier.send(STOPPING="1", STATUS="stopping")
            if page is not None:
                await page.cleanup()
            await sup.stop("control")  # the control loop first: it hands back to the cabinet
            await sup.stop("reload")  # a reload in progress ends before the pollers stop
            await sup.stop(*(p.stage for p in self.pollers), "status-log", "watchdog")
            # a dead ingest stage (the supervisor gave up on it) cannot flush: say so at once
            await ingest.flush(10.0 if sup.states["ingest"].running else 0.0)
            await sup.stop("ingest")
            if self.alarms is not None:
                await self.alarms.flush()
            await sup.stop("alarms")
            await commands.close()
            sup.retire("uplink")
            await uplink.stop()
            await sup.stop("uplink")
            await store.close()
            self.notifier.close()
            log.info("stopped; %d samples stay buffered", store.pending_rows)

    async def _alarms(self, store: Store, uplink: Uplink, catalogue: list[Any]) -> AlarmRuntime:
        """The alarm stage from ``alarms:``, restored from the buffer.

        Raises:
            ConfigurationError: a fault map cannot be read.
        """
        assert self.config.alarms is not None
        facts = alarm_facts(self.config, catalogue)

        def changed() -> None:
            uplink.wake()
            uplink.refresh_status()

        try:
            return await AlarmRuntime.open(
                self.config.alarms, facts, self.config_dir, store, clock, changed
            )
        except FaultMapError as exc:
            raise ConfigurationError(f"alarms: {exc}") from exc

    def _uplink(self, store: Store, broker: BrokerSettings) -> Uplink:
        """The uplink stage from ``uplink:``, with this agent's health in its status messages."""
        cfg, up = self.config, self.config.uplink
        return Uplink(
            broker=broker,
            topics=contract.Topics.for_gateway(up.topic_prefix, cfg.site.id, self.gateway),
            ident=contract.Identity(cfg.site.id, self.gateway),
            store=store,
            units=self._units,  # updated in place by a reload
            catalogue=self._meta,
            settings=UplinkSettings(
                batch_max_samples=up.batch_max_samples,
                batch_interval_s=up.batch_interval_s,
                backlog_rate_per_s=up.backlog_rate_per_s,
                inflight_window=up.inflight_window,
                compression=up.compression,
                telemetry_format=up.telemetry_format,
                reconnect_spread_s=up.reconnect_spread_s,
            ),
            clock=clock,
            status_extra=lambda: {
                "sw": __version__,
                "clock": {"synced": clock.synced()},
                "health": status_page.snapshot(self, points=False, alarms=False),
                **({"alarms": self.alarms.status_list()} if self.alarms else {}),
            },
            meta_extra={
                "sw": __version__,
                "commands": command_meta(cfg) | alarm_command_meta(cfg),
                "encoding": {
                    "telemetry": up.compression,
                    "telemetry_format": up.telemetry_format,
                },
            },
        )

    async def _log_status(self) -> None:
        while True:
            await asyncio.sleep(60.0)
            assert self.store and self.uplink
            log.info(
                "status: polls %d, buffered %d, published %d live + %d backfill, uplink %s",
                sum(p.counters.polls for p in self.pollers),
                await self.store.pending(),
                self.uplink.counters.samples_live,
                self.uplink.counters.samples_backfill,
                "up" if self.uplink.connected.is_set() else "down",
            )


STOP_DEADLINE_S = 20.0
"""A stop that takes longer is stuck: dump every thread's stack and exit 1 (below systemd's
``TimeoutStopSec=30`` in ``systemd/pumproom-agent.service``, so the log says why)."""


async def _stop_deadline(stop: asyncio.Event) -> None:
    """Once ``stop`` is set, arm a watchdog outside the event loop (faulthandler's C thread),
    which still fires when the loop itself is stuck. Buffered data is safe either way: every
    committed SQLite transaction survives an exit."""
    await stop.wait()
    faulthandler.dump_traceback_later(STOP_DEADLINE_S, exit=True)


def run(config: SiteConfig, load: Callable[[], SiteConfig] | None = None) -> int:
    """Run the agent in the foreground until SIGTERM or SIGINT; returns the exit code: 0 after
    a stop, :data:`EXIT_CONFIG` (2) when the configuration cannot work on this machine (a
    credential, a TLS file, a buffer path on a read-only file system or without permission:
    systemd does not restart), 1 for a failure a restart may cure (the buffer locked by another
    process, a full disk, a task that kept failing: :mod:`agent.supervisor`). A failure to start
    is one ERROR line, without a traceback. SIGHUP re-reads the configuration with ``load``
    (:mod:`agent.reload`; without ``load`` a reload is refused and says so)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        agent = Agent(config, load)
        loop.add_signal_handler(signal.SIGHUP, agent.request_reload)
        guard = asyncio.create_task(_stop_deadline(stop), name="stop-deadline")
        try:
            await agent.run(stop)
        finally:
            guard.cancel()
        if agent.fatal is not None:
            raise RuntimeError(f"{agent.fatal}: stopped, exit 1 (systemd restarts the agent)")

    try:
        asyncio.run(main())
    except ConfigurationError as exc:
        log.error("%s; not starting (a configuration error: exit %d)", exc, EXIT_CONFIG)
        return EXIT_CONFIG
    except StoreUnavailable as exc:
        if exc.installation:
            log.error(
                "buffer %s; the file is left as it is. Not starting: fix buffer.path or the"
                " folder (mount, permissions) (exit %d)",
                exc,
                EXIT_CONFIG,
            )
            return EXIT_CONFIG
        log.error("buffer %s; the file is left as it is. Not starting (exit 1, retry)", exc)
        return 1
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    return 0
