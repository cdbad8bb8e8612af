"""The push services built together: rules, evaluation and counts, pushers."""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.account_data import PUSH_RULES, AccountDataService
from homeserver.accounts import AccountService
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.http.outbound_tls import client_tls
from homeserver.media.preview import AddressFilter
from homeserver.notifier import Notifier
from homeserver.push.default_rules import default_rules
from homeserver.push.gateway import NotificationBuilder, PushGatewayClient
from homeserver.push.notifications import PushEvaluator
from homeserver.push.pushers import PusherPool
from homeserver.push.rules_service import PushRulesService
from homeserver.replication.ephemeral import EphemeralReplication, role_arguments, stream_source
from homeserver.replication.invalidation import CachePublisher
from homeserver.replication.notices import PUSH_RULES as PUSH_RULES_STREAM
from homeserver.rooms.persister import EventPersister
from homeserver.sessions import SessionService
from storage.stores import Stores


@dataclass(frozen=True)
class PushService:
    rules: PushRulesService
    evaluator: PushEvaluator
    pushers: PusherPool

    @classmethod
    def build(
        cls,
        config: HomeserverConfig,
        stores: Stores,
        notifier: Notifier,
        persister: EventPersister,
        clock: Clock,
        *,
        replication: EphemeralReplication | None = None,
        cache_publisher: CachePublisher | None = None,
    ) -> PushService:
        """``replication``: the push-rules stream across processes (None: one process)."""
        sizes = config.caches.sizes
        rules = PushRulesService(
            stores.push_rules,
            notifier,
            cache_size=sizes.size("get_push_rules_for_user"),
            defaults=default_rules(config.push.legacy_mention_rules),
            stream=stream_source(replication, PUSH_RULES_STREAM, 0),
            cache_publisher=cache_publisher,
            **role_arguments(replication, PUSH_RULES_STREAM),
        )
        evaluator = PushEvaluator(
            config.server_name,
            stores,
            rules,
            clock,
            room_state_cache_size=sizes.size("push_room_state"),
            unread_cache_size=sizes.size("get_unread_event_push_actions_by_room_for_user"),
            cache_publisher=cache_publisher,
        )
        persister.txn_hooks.append(evaluator.evaluate_in_txn)
        client = PushGatewayClient(
            AddressFilter(config.ip_range_blacklist, config.ip_range_whitelist),
            tls=client_tls(config),
        )
        pushers = PusherPool(
            stores,
            clock,
            evaluator,
            client,
            NotificationBuilder(stores, config.push.include_content),
            persister.events_stream,
            cache_publisher=cache_publisher,
        )
        return cls(rules, evaluator, pushers)

    def use_account_data(self, account_data: AccountDataService) -> None:
        """Link push to account data: ``m.push_rules`` is the user's ruleset, its
        changes take account-data positions; recipients who ignore a sender
        (``m.ignored_user_list``) are not notified."""
        account_data.serve_computed(PUSH_RULES, self.rules.account_data_content)

        async def rules_changed(user_id: str) -> None:
            await account_data.changed(user_id, PUSH_RULES)

        self.rules.changed_listeners.append(rules_changed)
        self.evaluator.ignored = account_data

    def use_sessions(self, sessions: SessionService, accounts: AccountService) -> None:
        """A deleted device takes the pushers it set with it; a deactivated account
        loses every pusher (those set without a device too)."""
        sessions.device_removed_hooks.append(self.pushers.on_devices_removed_txn)
        accounts.deactivation_hooks.append(self.pushers.remove_all)

    async def start(self) -> None:
        """Resume every pusher's queue from its stored position."""
        await self.pushers.start()

    async def stop(self) -> None:
        await self.pushers.stop()
