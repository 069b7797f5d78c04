"""The template of every agechat node: a managed (lifecycle) node with honest parameters.

:class:`AgechatNode` is an rclpy ``LifecycleNode`` (as Nav2's and ROS4HRI's nodes are):

- ``on_configure`` calls :meth:`AgechatNode.configure`: load the models, create publishers
  (lifecycle publishers: silent unless active) and services;
- ``on_activate`` calls :meth:`AgechatNode.activate`: create the subscriptions and timers that
  feed processing (through :meth:`AgechatNode.subscribe` / :meth:`AgechatNode.timer`);
- ``on_deactivate`` removes them and calls :meth:`AgechatNode.deactivate`: nothing is processed
  or published while inactive (a privacy switch: camera and microphone are ignored);
- ``on_cleanup`` calls :meth:`AgechatNode.cleanup`: free the models.

With the ``autostart`` parameter (default true) the node configures and activates itself, so the
launch file needs no lifecycle manager on Humble, Jazzy or Kilted. Parameters are declared from
:class:`agechat_ros.params.Param` specs; ``dynamic`` ones are validated and applied at run time
(:meth:`AgechatNode.parameters_changed`), the others are read-only. ``/diagnostics`` carries the
lifecycle state. :func:`run_node` is the one ``main()``: one Ctrl-C (or SIGTERM), however often it
is repeated, stops the node with exit code 0 and no traceback.
"""

from __future__ import annotations

import copy
import signal
import sys
import threading
import traceback
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.timer import Timer

from agechat_ros import DeviceUnavailable
from agechat_ros.health import NodeHealth
from agechat_ros.params import Param, ParameterError, declare_and_read, validate_changes

AUTOSTART = Param(
    'autostart',
    True,
    'configure and activate the node at start; false: it waits in the unconfigured '
    'state for `ros2 lifecycle set <node> configure` and `activate`',
)
#: The period of the node's /diagnostics, named as ROS' diagnostic_updater names it.
DIAGNOSTICS_PERIOD = Param(
    'diagnostic_updater.period',
    1.0,
    'seconds between two /diagnostics messages of this node (counters, lifecycle state)',
    low=0.01,
    high=60.0,
    dynamic=True,
)


#: Errors that mean "the node cannot start as configured": printed as one line, exit status 2.
STARTUP_ERRORS = (ParameterError, FileNotFoundError, DeviceUnavailable)


class StartupError(RuntimeError):
    """Autostart could not bring the node up; the text says which transition failed and why."""


class AgechatNode(LifecycleNode):
    """Lifecycle node template; subclasses override the hooks, never the transitions."""

    def __init__(self, name: str, params: Sequence[Param], **node_kwargs):
        super().__init__(name, **node_kwargs)
        self._param_specs: Dict[str, Param] = {
            spec.name: spec for spec in [*params, AUTOSTART, DIAGNOSTICS_PERIOD]
        }
        self.p: SimpleNamespace = declare_and_read(
            self, self._param_specs.values(), self.check_parameters
        )
        self.health = NodeHealth(self, period_s=getattr(self.p, DIAGNOSTICS_PERIOD.name))
        self.configure_error: Optional[BaseException] = None
        self.activate_error: Optional[BaseException] = None
        self._is_active = threading.Event()
        self._active_entities: List[Any] = []  # subscriptions and timers while active
        self._configured_services: List[Any] = []  # services from configure to cleanup
        self._configured_publishers: List[Any] = []  # publishers from configure to cleanup
        self._set_state_label('unconfigured')
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- hooks for subclasses ----------------------------------------------------------------
    def check_parameters(self, p: SimpleNamespace) -> Optional[str]:
        """Return why this combination of values is invalid (checked at start and on set)."""
        return None

    def configure(self) -> None:
        """Load models; create publishers (:meth:`publisher`) and services (:meth:`service`)."""

    def activate(self) -> None:
        """Create the subscriptions and timers that feed processing (:meth:`subscribe`)."""

    def deactivate(self) -> None:
        """Stop processing: forget half-done work (subscriptions are already gone)."""

    def cleanup(self) -> None:
        """Free what configure() loaded."""

    def parameters_changed(self, changes: Dict[str, Any]) -> None:
        """Apply run-time changes of dynamic parameters (already validated and in self.p)."""

    # -- entity helpers ----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while the node is in the active state (processing and publishing)."""
        return self._is_active.is_set()

    def publisher(self, msg_type, topic: str, qos, **kwargs):
        """Create a lifecycle publisher: it publishes only while the node is active.

        Worker threads may still publish while the process shuts down (after Ctrl-C rclpy's
        context is gone before the threads stop); such a publish is skipped, not raised.
        """
        publisher = self.create_lifecycle_publisher(msg_type, topic, qos, **kwargs)
        self._configured_publishers.append(publisher)
        return _ShutdownSafePublisher(publisher, self.context)

    def service(self, srv_type, name: str, callback: Callable, **kwargs):
        """Create a service that lives from configure to cleanup."""
        server = self.create_service(srv_type, name, callback, **kwargs)
        self._configured_services.append(server)
        return server

    def subscribe(self, msg_type, topic: str, callback: Callable, qos, **kwargs):
        """Create a subscription that lives while the node is active.

        With ``qos_overriding_options`` the profile is copied first: rclpy writes the
        ``qos_overrides.<topic>.subscription.*`` parameters into the profile it is given, which
        must not change agechat_ros.qos for the node's other subscriptions.
        """
        if kwargs.get('qos_overriding_options') is not None:
            qos = copy.copy(qos)
        subscription = self.create_subscription(msg_type, topic, callback, qos, **kwargs)
        self._active_entities.append(subscription)
        return subscription

    def timer(self, period_s: float, callback: Callable, **kwargs):
        """Create a timer that runs while the node is active."""
        timer = self.create_timer(period_s, callback, **kwargs)
        self._active_entities.append(timer)
        return timer

    # -- transitions -------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the models (configure()); on failure log why and stay unconfigured."""
        self.configure_error = None
        try:
            self.configure()
        except Exception as error:  # noqa: BLE001 - reported here, rclpy would hide it
            self.configure_error = error
            if not (self.p.autostart and isinstance(error, STARTUP_ERRORS)):
                # with autostart a startup error is printed once, as the [FATAL] line
                detail = (
                    str(error) if isinstance(error, STARTUP_ERRORS) else traceback.format_exc()
                )
                self.get_logger().error(f'configure failed: {detail}')
            self._release(self.cleanup)
            return TransitionCallbackReturn.FAILURE
        self._set_state_label('inactive')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, then create the subscriptions (activate())."""
        super().on_activate(state)
        self._is_active.set()
        self.activate_error = None
        try:
            self.activate()
        except Exception as error:  # noqa: BLE001
            self.activate_error = error
            if not (self.p.autostart and isinstance(error, STARTUP_ERRORS)):
                # with autostart a startup error is printed once, as the [FATAL] line
                detail = (
                    str(error) if isinstance(error, STARTUP_ERRORS) else traceback.format_exc()
                )
                self.get_logger().error(f'activate failed: {detail}')
            self._stop_processing()
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        self._set_state_label('active')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Remove subscriptions and timers, stop processing, silence the publishers."""
        self._stop_processing()
        super().on_deactivate(state)
        self._set_state_label('inactive')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the models and remove the services."""
        self._release(self.cleanup)
        self._set_state_label('unconfigured')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop and free everything, whatever the state."""
        self.teardown()
        self._set_state_label('finalized')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Return to unconfigured after an error in a transition, with everything freed."""
        self.teardown()
        self._set_state_label('unconfigured')
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> None:
        """Configure and activate; raise the configure error or StartupError if that fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            if isinstance(self.configure_error, STARTUP_ERRORS):
                raise self.configure_error
            raise StartupError(f'{self.get_name()}: configure failed: {self.configure_error!r}')
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            if isinstance(self.activate_error, STARTUP_ERRORS):
                raise self.activate_error
            raise StartupError(f'{self.get_name()}: activate failed (see the log above)')

    def teardown(self) -> None:
        """Stop processing and free the models (idempotent; used on shutdown)."""
        if self.active:
            self._stop_processing()
        self._release(self.cleanup)

    # -- internals ---------------------------------------------------------------------------
    def _stop_processing(self) -> None:
        self._is_active.clear()
        for entity in self._active_entities:
            if isinstance(entity, Timer):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._active_entities.clear()
        self._release(self.deactivate)

    def _release(self, hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception:  # noqa: BLE001 - freeing must go on
            self.get_logger().error(f'{hook.__name__} failed: {traceback.format_exc()}')
        if hook == self.cleanup:
            services, self._configured_services = self._configured_services, []
            publishers, self._configured_publishers = self._configured_publishers, []
            try:
                for server in services:
                    self.destroy_service(server)
                for publisher in publishers:
                    self.destroy_lifecycle_publisher(publisher)
            except Exception:  # noqa: BLE001 - at exit the node is destroyed whole anyway
                if self.context.ok():
                    raise

    def _set_state_label(self, label: str) -> None:
        self.health.set('lifecycle_state', label)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        result = validate_changes(
            self._param_specs, self.p, {p.name: p.value for p in parameters}, self.check_parameters
        )
        if isinstance(result, str):
            return SetParametersResult(successful=False, reason=result)
        if result:
            self.p = SimpleNamespace(**{**vars(self.p), **result})
            try:
                if DIAGNOSTICS_PERIOD.name in result:
                    self.health.set_period(result[DIAGNOSTICS_PERIOD.name])
                self.parameters_changed(result)
            except Exception as error:  # noqa: BLE001 - refuse rather than half-apply
                self.get_logger().error(f'applying {sorted(result)} failed: {error!r}')
                return SetParametersResult(successful=False, reason=f'could not apply: {error}')
            self.get_logger().info(
                'parameters changed: '
                + ', '.join(f'{name}={value!r}' for name, value in sorted(result.items()))
            )
        return SetParametersResult(successful=True)


class _ShutdownSafePublisher:
    """A publisher whose publish() is a no-op once the rclpy context has shut down."""

    def __init__(self, publisher, context):
        self._publisher = publisher
        self._context = context

    def publish(self, msg) -> None:
        """Publish `msg`; during shutdown (context no longer ok) drop it silently."""
        try:
            self._publisher.publish(msg)
        except Exception:  # noqa: BLE001 - rclpy raises RCLError for an invalid context
            if self._context.ok():
                raise

    def __getattr__(self, name):
        return getattr(self._publisher, name)


class _StopRequest:
    """Records SIGINT/SIGTERM instead of raising KeyboardInterrupt in the middle of teardown.

    Installed before ``rclpy.init``: rclpy's own handler (which wakes the executor and shuts the
    context down) then chains to this one, so a terminal's Ctrl-C plus the SIGINT that
    ``ros2 launch`` forwards a few ms later both end quietly.
    """

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame) -> None:
        self.requested = True

    def install(self) -> '_StopRequest':
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self)
        return self

    @staticmethod
    def ignore_from_now_on() -> None:
        """Ignore SIGINT/SIGTERM for the rest of the process (teardown is done)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def run_node(
    node_factory: Callable[[], AgechatNode], args: Optional[list] = None, executor_threads: int = 1
) -> int:
    """Run one node: init, autostart, spin until Ctrl-C/SIGTERM, tear down; return the exit code.

    Start-up errors (invalid parameters, missing model files) are printed as one ``[FATAL]``
    line and give exit status 2; a stop request at any moment gives 0.
    """
    import rclpy
    from rclpy.executors import (
        ExternalShutdownException,
        MultiThreadedExecutor,
        SingleThreadedExecutor,
    )

    stop = _StopRequest().install()
    rclpy.init(args=args)
    node = executor = None
    code = 0
    try:
        node = node_factory()
        if node.p.autostart and not stop.requested:
            node.autostart()
        if not stop.requested:
            executor = (
                MultiThreadedExecutor(num_threads=executor_threads)
                if executor_threads > 1
                else SingleThreadedExecutor()
            )
            executor.add_node(node)
            executor.spin()
    except (*STARTUP_ERRORS, StartupError) as error:
        if not stop.requested:
            print(f'[FATAL] {error}', file=sys.stderr, flush=True)
            code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: BLE001 - a failure caused by the shutdown itself is no error
        if not stop.requested:
            raise
    finally:
        stop.install()  # a repeated signal during teardown must not raise either
        if executor is not None:
            executor.shutdown()  # no callback may run while the node is torn down
        if node is not None:
            node.teardown()
            node.destroy_node()
        rclpy.try_shutdown()
        # Interpreter exit resets Python signal handlers to the default action, so a late second
        # SIGINT (the one ros2 launch forwards after the terminal's) would kill us with -2 there.
        stop.ignore_from_now_on()
    return code
