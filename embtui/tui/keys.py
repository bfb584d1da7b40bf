"""Keys in order: the app hands each key on only after the previous one is handled, so keys typed
at once after a focus-moving key (a pane key, `a`, `/`) land in the newly focused widget."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from textual import events
from textual._context import active_message_pump
from textual.timer import Timer


class _KeyName:
    """A key name where Textual's sequence table expects a ``Keys`` member (it reads ``.value``)."""

    def __init__(self, value: str) -> None:
        self.value = value


def read_alt_digits_as_alt() -> None:
    """alt+0-9 as terminals send them (ESC then the digit) become ``alt+N`` keys.

    Textual reads ESC+digit as the character macOS types with option+digit ("\\x1b5" is "∞"), so in
    a real terminal (xterm, tmux, GNOME, kitty without its protocol) no ``alt+N`` binding ever
    fires, and escape followed at once by 5 (a fast typist, or tmux sending both in one write)
    types "∞" into the query box. A Mac keyboard that types "∞" itself sends the character, not
    ESC+5, so it still types it."""
    from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

    for digit in "0123456789":
        ANSI_SEQUENCES_KEYS[f"\x1b{digit}"] = (_KeyName(f"alt+{digit}"),)  # type: ignore[assignment]


read_alt_digits_as_alt()

# How often a key in flight is checked: while the widget holding it is alive it is waited for
# (a loaded machine can take a second per key), up to KEY_GIVE_UP_S; a key whose widget went
# away mid-way stops holding the next ones at the next check.
KEY_CHECK_S = 0.5
KEY_GIVE_UP_S = 10.0
# A pane that has not mounted yet (panes mount just after the first frame) holds keys at most this long.
HOLD_S = 3.0


class OrderedKey(events.Key):
    """A key the app dispatches one at a time; it tells the app when it has been handled.

    Handled means: a widget stopped it (after that widget finished with it), or it bubbled back
    to the app and the app's bindings ran (see ``OrderedKeysMixin.on_event``)."""

    def __init__(self, key: str, character: str | None, owner: "OrderedKeysMixin") -> None:
        super().__init__(key, character)
        self._owner = owner
        self.holder: Any = None
        """The widget it was last handed to."""

    def _bubble_to(self, widget: Any) -> None:
        self.holder = widget
        super()._bubble_to(widget)

    def stop(self, stop: bool = True) -> "OrderedKey":
        super().stop(stop)
        pump = active_message_pump.get(None)
        # Textual stops a key at the screen when the app sent it ("parent is sender") and still
        # bubbles it to the app, whose bindings then run: the app reports that one itself
        handing_up = getattr(pump, "_parent", None) is self._owner and self._sender is self._owner
        if stop and pump is not None and pump is not self._owner and not handing_up:
            # runs once ``pump`` has finished with this key (its queue is in order)
            pump.call_later(self._owner.key_handled, self)
        return self


OrderedKey.handler_name = "on_key"  # handled by every widget's key handlers, as any Key


class OrderedKeysMixin:
    """For an App: queue keys from the terminal and hand them on one by one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys_waiting: deque[events.Key] = deque()
        self._key_in_flight: OrderedKey | None = None
        self._key_timer: Timer | None = None
        self._key_holds = 0
        self._hold_timer: Timer | None = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not isinstance(event, OrderedKey) \
                and not event.is_forwarded:
            self._keys_waiting.append(event)  # from the terminal (or Pilot)
            self._next_key()
            return
        coming_back = event.is_forwarded
        if isinstance(event, OrderedKey) and not coming_back:
            event.holder = self.focused or self.screen  # type: ignore[attr-defined]
        await super().on_event(event)  # type: ignore[misc]
        if isinstance(event, OrderedKey) and (coming_back or not event.is_forwarded):
            # it bubbled back up to the app and the bindings ran, or a priority binding took it
            # (else it is on its way to the focused widget, which reports back by stopping it)
            self.key_handled(event)

    def _next_key(self) -> None:
        if self._key_in_flight is not None or self._key_holds or not self._keys_waiting:
            return
        raw = self._keys_waiting.popleft()
        key = OrderedKey(raw.key, raw.character, self)
        key._sender = raw._sender
        self._key_in_flight = key
        self._arm_watchdog(key, time.monotonic() + KEY_GIVE_UP_S)
        self.post_message(key)  # type: ignore[attr-defined]

    def _arm_watchdog(self, key: OrderedKey, give_up_at: float) -> None:
        def check() -> None:
            if key is not self._key_in_flight:
                return
            holder = key.holder
            alive = holder is None or (holder.is_attached and not holder._closing
                                       and not holder._closed)
            if alive and time.monotonic() < give_up_at:
                self._arm_watchdog(key, give_up_at)
            else:
                self.key_handled(key)

        self._key_timer = self.set_timer(KEY_CHECK_S, check)  # type: ignore[attr-defined]

    def key_handled(self, key: OrderedKey) -> None:
        """``key`` is done with: hand on the next one (called at most once per key that counts)."""
        if key is not self._key_in_flight:
            return
        self._key_in_flight = None
        if self._key_timer is not None:
            self._key_timer.stop()
            self._key_timer = None
        self._next_key()

    def hold_keys(self) -> None:
        """Keep typed keys queued (e.g. until the pane just shown has mounted its inputs)."""
        self._key_holds += 1
        if self._hold_timer is None:
            self._hold_timer = self.set_timer(HOLD_S, self._release_all)  # type: ignore[attr-defined]

    def release_keys(self) -> None:
        if self._key_holds:
            self._key_holds -= 1
        if not self._key_holds and self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        self._next_key()

    def _release_all(self) -> None:
        self._hold_timer = None
        self._key_holds = 0
        self._next_key()
