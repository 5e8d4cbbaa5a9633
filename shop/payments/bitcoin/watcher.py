"""The chain watcher: our own index of our own addresses, from raw blocks and the mempool.

It asks the node only for public chain data (block hashes, raw blocks, the mempool) — never for
an address or a wallet — so it works with a pruned node with its wallet disabled, and the node
never learns which addresses are the shop's.

* Watched scripts come from the database (invoices still open or monitored, and any with money
  in flight or a reverted payment), not from deriving keys: a set lookup per output, however
  many invoices are open. New invoices and the few watched past their window are picked up
  every round; the whole list is reloaded only now and then, to drop what is over.
* A transaction counts once its outputs are ours and nothing we count conflicts with it: each
  payment remembers the coins its transaction spends, and a mempool transaction or a block that
  spends one of them with another transaction removes it on the spot (an RBF replacement, a
  double spend), before the next poll could miss the difference.
* Blocks are processed in height order, each in one transaction together with the row that
  records it (`bitcoin_blocks`), so a crash before commit simply processes it again and every
  payment is keyed by its outpoint. A reorg is found by comparing stored hashes with the node's;
  what the orphaned blocks confirmed goes back to "unconfirmed" and is re-judged.
* ZMQ (`rawtx`, `hashblock`, and `sequence` removals) only wakes us early; a poll every few
  seconds is the truth, and it reads the mempool in JSON-RPC batches.
* On PostgreSQL one worker at a time watches (an advisory lock); others stand by.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bitcoin.core import CBlock, CTransaction, b2lx, lx
from sqlalchemy import delete, select, union_all
from sqlalchemy.orm import Session

from shop.config import ConfigError, Settings, load_settings
from shop.db import AdvisoryLock, Database, utcnow
from shop.payments.bitcoin import invoice as inv
from shop.payments.bitcoin import rawtx
from shop.payments.bitcoin.descriptor import parse_watch_only
from shop.payments.bitcoin.models import (
    BitcoinBlock,
    BitcoinInvoice,
    BitcoinPayment,
    BitcoinWatcherStatus,
)
from shop.payments.bitcoin.node import (
    BlockTransactions,
    NodeClient,
    NodeError,
    NodeRPCError,
    NodeWrongChain,
    ZmqSubscriber,
)
from shop.payments.bitcoin.settings import BitcoinPolicy, policy_from

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x5B17C0 + 3  # any constant; only the chain watcher takes it
SEQUENCE_NO_RBF = 0xFFFFFFFE
KEEP_BLOCKS = 288  # two days of blocks: far deeper than any reorg the network has seen
# Deeper than this is not a reorganisation but another chain (a regtest or signet node reset,
# the wrong node): refused, so it cannot take back what the real chain paid.
MAX_REORG_DEPTH = 100
FIRST_START_LOOKBACK = 6
MEMPOOL_BATCH = 500  # getrawtransaction calls per JSON-RPC batch
WATCH_BATCH = 50_000  # watch-list rows per fetch


def signals_rbf(tx: CTransaction) -> bool:
    return any(txin.nSequence < SEQUENCE_NO_RBF for txin in tx.vin)


@dataclass
class SyncResult:
    blocks: int = 0
    reorged: int = 0
    payments: int = 0
    removed: int = 0


def spent_outpoints(tx: CTransaction) -> str:
    return ",".join(f"{b2lx(i.prevout.hash)}:{i.prevout.n}" for i in tx.vin)


def _fetch_batches(session: Session, query, server_side: bool) -> Iterator[list[tuple]]:
    """The rows of `query` in batches, read with the driver's own cursor.

    A full reload reads a million rows: SQLAlchemy building a Row for each took ~6 s of CPU,
    the driver's tuples ~1.3 s. One cursor of our own, opened before any row is read (SQLAlchemy
    streaming results buffer rows of their own, which a reader around them loses). The
    statement and its parameters are compiled by SQLAlchemy for this dialect, each parameter
    through its column type's bind processor (UTCDateTime stores naive UTC text on SQLite).
    """
    conn = session.connection()
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect)
    params = compiled.construct_params()
    for name, value in params.items():
        process = compiled.binds[name].type.bind_processor(dialect)
        params[name] = process(value) if process else value
    args = [params[name] for name in compiled.positiontup] if compiled.positional else params
    driver = conn.connection.driver_connection
    assert driver is not None  # None only after the connection was invalidated
    # On PostgreSQL a named (server-side) cursor, inside the session's transaction: psycopg's
    # client cursor would first hold the whole result in memory.
    server_side = server_side and dialect.name == "postgresql"
    cursor = driver.cursor(name="watch_list") if server_side else driver.cursor()
    try:
        cursor.execute(str(compiled), args)
        while rows := cursor.fetchmany(WATCH_BATCH):
            yield rows
    finally:
        cursor.close()


@dataclass
class WatchSet:
    """scriptPubKey -> invoice id of every watched invoice, refreshed incrementally.

    Also the coins spent by our unconfirmed payments, so a transaction or block that spends
    them otherwise is recognised as a conflict with a set lookup per input.
    """

    scripts: dict[bytes, int] = field(default_factory=dict)
    max_id: int = 0
    loaded_at: datetime | None = None
    pending_spends: dict[tuple[bytes, int], str] = field(default_factory=dict)

    def refresh(self, session: Session, now: datetime, full_every: timedelta) -> None:
        full = self.loaded_at is None or now - self.loaded_at >= full_every
        in_flight = select(BitcoinPayment.invoice_id).where(BitcoinPayment.status == "mempool")
        reasons = [
            BitcoinInvoice.monitor_until > now if full else BitcoinInvoice.id > self.max_id,
            BitcoinInvoice.status == inv.ALWAYS_WATCHED_STATUS.value,
            BitcoinInvoice.exception == inv.ALWAYS_WATCHED_EXCEPTION.value,
            BitcoinInvoice.id.in_(in_flight),
        ]
        # One SELECT per reason so each uses its index: OR'ed in one WHERE, PostgreSQL scans
        # the whole table (a second at 1M invoices) to find the few new ones.
        query = union_all(
            *(select(BitcoinInvoice.script_pubkey, BitcoinInvoice.id).where(r) for r in reasons)
        )
        scripts = {} if full else self.scripts
        max_id = self.max_id
        for rows in _fetch_batches(session, query, server_side=full):
            scripts.update(rows)
            max_id = max(max_id, max(row[1] for row in rows))
        self.scripts, self.max_id = scripts, max_id
        if full:
            self.loaded_at = now
        self.load_pending(session)

    def load_pending(self, session: Session) -> None:
        pending: dict[tuple[bytes, int], str] = {}
        for txid, spends in session.execute(
            select(BitcoinPayment.txid, BitcoinPayment.spends).where(
                BitcoinPayment.status == "mempool"
            )
        ):
            for outpoint in filter(None, spends.split(",")):
                prev, _, n = outpoint.partition(":")
                pending[(lx(prev), int(n))] = txid
        self.pending_spends = pending

    def add(self, script: bytes, invoice_id: int) -> None:
        self.scripts[script] = invoice_id

    def matches(self, tx: CTransaction) -> list[tuple[inv.Output, int]]:
        found = []
        scripts = self.scripts
        txid = None
        for n, out in enumerate(tx.vout):
            invoice_id = scripts.get(out.scriptPubKey)
            if invoice_id is not None and out.nValue > 0:
                txid = txid or b2lx(tx.GetTxid())
                found.append(
                    (inv.Output(txid, n, int(out.nValue), bytes(out.scriptPubKey)), invoice_id)
                )
        return found

    def conflicts(self, tx: CTransaction) -> set[str]:
        """Txids of our unconfirmed payments that `tx` double-spends (never itself)."""
        pending = self.pending_spends
        if not pending:
            return set()
        hit = {pending[key] for i in tx.vin if (key := (i.prevout.hash, i.prevout.n)) in pending}
        if hit:
            hit.discard(b2lx(tx.GetTxid()))
        return hit


def remove_conflicted(session: Session, txids: set[str], now: datetime) -> set[int]:
    """Our unconfirmed payments that another transaction replaced or double-spent."""
    touched: set[int] = set()
    for payment in session.scalars(
        select(BitcoinPayment).where(
            BitcoinPayment.txid.in_(sorted(txids)), BitcoinPayment.status == "mempool"
        )
    ):
        inv.remove_payment(payment, now, conflict=True)
        touched.add(payment.invoice_id)
    return touched


def _locked_invoice(session: Session, invoice_id: int) -> BitcoinInvoice | None:
    # Any worker's invoice-expiry job may be judging the same invoice (it locks the rows it
    # takes): wait for it and judge the state it committed, instead of overwriting it.
    return session.get(BitcoinInvoice, invoice_id, with_for_update=True, populate_existing=True)


def stored_tip(session: Session) -> BitcoinBlock | None:
    return session.scalar(select(BitcoinBlock).order_by(BitcoinBlock.height.desc()).limit(1))


def evaluate_all(
    session: Session,
    invoice_ids: Iterable[int],
    tip_height: int | None,
    policy: BitcoinPolicy,
    now: datetime,
) -> None:
    for invoice_id in sorted(invoice_ids):
        invoice = _locked_invoice(session, invoice_id)
        if invoice is not None:
            inv.evaluate(session, invoice, tip_height, policy, now)
            # Keep the identity map small: each flush scans it, and a block may pay thousands.
            session.flush()
            session.expunge_all()


def apply_block(
    session: Session,
    block: CBlock | BlockTransactions | None,
    block_hash: str,
    height: int,
    watch: WatchSet,
    policy: BitcoinPolicy,
    now: datetime,
) -> set[int]:
    """Record a block extending the stored tip and everything it pays us; judge the invoices.

    The caller checked that it extends the tip; its transaction commits it all or nothing.
    """
    watch.load_pending(session)
    found: dict[int, list[tuple[inv.Output, str]]] = {}
    conflicted: set[str] = set()
    for tx in block.vtx if block is not None else ():
        if watch.pending_spends:
            conflicted |= watch.conflicts(tx)
        matches = watch.matches(tx)
        if matches:
            spends = spent_outpoints(tx)
            for output, invoice_id in matches:
                found.setdefault(invoice_id, []).append((output, spends))
    touched = remove_conflicted(session, conflicted, now) if conflicted else set()
    judged: set[int] = set()
    for invoice_id in sorted(found):
        invoice = _locked_invoice(session, invoice_id)
        if invoice is None:
            continue
        for output, spends in found[invoice_id]:
            inv.record_output(
                session,
                invoice,
                output,
                spends=spends,
                now=now,
                block_hash=block_hash,
                height=height,
                unconfirmed_parents=False,
            )
        # Judged while loaded and locked: loading it a second time costs more than the
        # judgement (a block paying us is mostly orders becoming paid).
        inv.evaluate(session, invoice, height, policy, now)
        judged.add(invoice_id)
        session.flush()
        session.expunge_all()
    touched |= judged
    prev_hash = b2lx(block.hashPrevBlock) if block is not None else ""
    session.add(BitcoinBlock(height=height, hash=block_hash, prev_hash=prev_hash, processed_at=now))
    session.flush()
    if policy.confirmations > 1:
        # This block makes earlier payments deeper: those reaching the policy's depth now
        # count, in invoices this block does not touch.
        touched |= set(
            session.scalars(
                select(BitcoinPayment.invoice_id).where(
                    BitcoinPayment.block_height == height - policy.confirmations + 1,
                    BitcoinPayment.status == "confirmed",
                )
            )
        )
    evaluate_all(session, touched - judged, height, policy, now)
    session.execute(delete(BitcoinBlock).where(BitcoinBlock.height <= height - KEEP_BLOCKS))
    return touched


class ChainWatcher:
    def __init__(
        self,
        database: Database,
        node: NodeClient,
        policy: BitcoinPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        lookback: int = FIRST_START_LOOKBACK,
        full_reload: timedelta = timedelta(hours=1),
        network: str | None = None,
        fingerprint: str | None = None,
    ):
        self.database = database
        self.node = node
        self.policy = policy
        self.clock = clock
        self.lookback = lookback
        self.full_reload = full_reload
        self.network = network
        self.fingerprint = fingerprint
        self._gap_warned = 0
        self.watch = WatchSet()
        # Mempool txids already looked at, so a poll fetches only what is new.
        self._seen_txids: set[str] = set()
        self._lock = AdvisoryLock(database, ADVISORY_LOCK_KEY, "chain watcher")
        self.watching = False  # this process is the one watching (the worker's heartbeat says so)
        self.on_change: Callable[[set[int]], None] | None = None  # tests and benchmarks listen

    # ------------------------------------------------------------ single-watcher lock

    def acquire(self) -> bool:
        """On PostgreSQL, take the advisory lock (held until release)."""
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    # ------------------------------------------------------------ one round

    def sync(self) -> SyncResult:
        """Catch up with the node: reorgs, new blocks, then the mempool. Raises NodeError."""
        result = SyncResult()
        try:
            if self.network is not None:
                self.node.check_network(self.network)  # a wrong node must never mark orders paid
                self.network = None
            self._sync_blocks(result)
            self._sync_mempool(result)
        except NodeError as exc:
            self._record_status(error=str(exc))
            raise
        self._record_status(error=None)
        self._check_gap()
        return result

    def _check_gap(self) -> None:
        if self.fingerprint is None:
            return
        with self.database.job_session() as session:
            gap = inv.address_gap(session, self.fingerprint)
        if gap > self.policy.gap_limit and gap != self._gap_warned:
            self._gap_warned = gap
            log.warning(
                "%d addresses handed out since the last one that received a payment, "
                "more than the gap limit of %d: raise your wallet's gap limit, or it may "
                "not show payments to later addresses",
                gap,
                self.policy.gap_limit,
            )

    def _refresh_watch(self, session: Session) -> None:
        self.watch.refresh(session, self.clock(), self.full_reload)

    # ------------------------------------------------------------ blocks

    def _sync_blocks(self, result: SyncResult) -> None:
        node_tip = self.node.get_best_block_hash()
        with self.database.job_session() as session:
            tip = stored_tip(session)
            if tip is not None and tip.hash == node_tip:
                return
            node_height = self.node.get_block_count()
            if tip is None:
                next_height = max(0, node_height - self.lookback)
            else:
                fork = self._find_fork(session, node_height)
                if fork < tip.height:
                    result.reorged += self._roll_back(session, fork)
                next_height = fork + 1
        while next_height <= node_height:
            block_hash = self.node.get_block_hash(next_height)
            try:
                block = self.node.get_block_transactions(block_hash)
            except NodeRPCError as exc:
                if "prune" not in exc.message.lower():
                    raise
                log.error(
                    "block %d is pruned away on the node: payments in it cannot be seen; "
                    "keep the shop's worker running or raise the node's prune size",
                    next_height,
                )
                block = None
            if not self.process_block(block, block_hash, next_height):
                return  # the chain moved under us; the next round starts from the new tip
            result.blocks += 1
            next_height += 1
            if next_height > node_height:
                node_height = self.node.get_block_count()

    def _find_fork(self, session: Session, node_height: int) -> int:
        """Height of the highest stored block still on the node's active chain."""
        stored = session.execute(
            select(BitcoinBlock.height, BitcoinBlock.hash).order_by(BitcoinBlock.height.desc())
        ).all()
        tip_height = stored[0][0] if stored else 0
        for height, block_hash in stored:
            if tip_height - height > MAX_REORG_DEPTH:
                break
            if height <= node_height and self.node.get_block_hash(height) == block_hash:
                return height
        # None of the blocks we processed is on the node's chain: a reorganisation that deep has
        # never happened; a node switched to another chain (or network) has. Rolling back
        # would take away every payment we counted, so refuse and say so.
        raise NodeWrongChain(len(stored))

    def _roll_back(self, session: Session, fork: int) -> int:
        """Undo what blocks above `fork` confirmed; the payments are judged again later."""
        orphaned = session.scalars(select(BitcoinBlock).where(BitcoinBlock.height > fork)).all()
        hashes = [b.hash for b in orphaned]
        payments = session.scalars(
            select(BitcoinPayment).where(BitcoinPayment.block_hash.in_(hashes))
        ).all()
        for payment in payments:
            inv.unconfirm_payment(payment)
            # Watched whatever its window says: the new chain may confirm it again at once.
            self.watch.add(bytes(payment.invoice.script_pubkey), payment.invoice_id)
        session.execute(delete(BitcoinBlock).where(BitcoinBlock.height > fork))
        log.warning(
            "chain reorganisation: %d block(s) above height %d left the chain, "
            "%d payment(s) unconfirmed again",
            len(orphaned),
            fork,
            len(payments),
        )
        return len(orphaned)

    def process_block(
        self, block: CBlock | BlockTransactions | None, block_hash: str, height: int
    ) -> bool:
        """Record one block and the payments it confirms, in one transaction.

        Returns False (nothing written) when it does not extend the stored tip.
        """
        now = self.clock()
        with self.database.job_session() as session:
            tip = stored_tip(session)
            prev_hash = b2lx(block.hashPrevBlock) if block is not None else ""
            if tip is not None and (
                tip.height != height - 1 or (block is not None and tip.hash != prev_hash)
            ):
                return False
            self._refresh_watch(session)
            touched = apply_block(session, block, block_hash, height, self.watch, self.policy, now)
        self._notify(touched)
        return True

    # ------------------------------------------------------------ mempool

    def _sync_mempool(self, result: SyncResult) -> None:
        txids = self.node.get_raw_mempool()
        in_mempool = set(txids)
        self._seen_txids &= in_mempool
        fresh = [t for t in txids if t not in self._seen_txids]
        if fresh:
            self.refresh_watch()
            for start in range(0, len(fresh), MEMPOOL_BATCH):
                chunk = fresh[start : start + MEMPOOL_BATCH]
                for tx in self.node.get_raw_transactions(chunk).values():
                    if tx is not None:
                        result.payments += self.handle_tx(tx)
                self._seen_txids.update(chunk)
        tip_hash = self.node.get_best_block_hash()
        now = self.clock()
        touched: set[int] = set()
        with self.database.job_session() as session:
            stored = stored_tip(session)
            if stored is None or stored.hash != tip_hash:
                return  # a block arrived meanwhile: "not in the mempool" may mean "just mined"
            pending = session.scalars(
                select(BitcoinPayment).where(BitcoinPayment.status == "mempool")
            ).all()
            for payment in pending:
                touched.add(payment.invoice_id)
                if payment.txid not in in_mempool:
                    # Neither in a block we processed nor in the mempool: replaced, evicted or
                    # double-spent (or its block was orphaned and it did not come back).
                    inv.remove_payment(payment, now)
                    result.removed += 1
            # Judged every round while money is in flight: zero-conf waits for time to pass.
            self._evaluate(session, touched, stored.height, now)
        self._notify(touched)

    def handle_tx(self, tx: CTransaction) -> int:
        """A transaction from the mempool (poll or ZMQ rawtx): record what pays us, and drop
        what it replaces."""
        matches = self.watch.matches(tx)
        conflicted = self.watch.conflicts(tx)
        if not matches and not conflicted:
            return 0
        unconfirmed_parents = True
        if matches:
            try:
                entry = self.node.get_mempool_entry(b2lx(tx.GetTxid()))
            except NodeError:
                entry = None
            # Unknown (already gone, node busy) counts as the risky answer.
            unconfirmed_parents = entry is None or bool(entry.get("depends", [True]))
        spends = spent_outpoints(tx)
        now = self.clock()
        touched: set[int] = set()
        with self.database.job_session() as session:
            tip = stored_tip(session)
            if conflicted:
                touched |= remove_conflicted(session, conflicted, now)
            for output, invoice_id in matches:
                invoice = _locked_invoice(session, invoice_id)
                if invoice is None:
                    continue
                payment = inv.record_output(
                    session,
                    invoice,
                    output,
                    spends=spends,
                    now=now,
                    unconfirmed_parents=unconfirmed_parents,
                )
                if conflicted:
                    payment.conflict_seen = True
                touched.add(invoice_id)
            self._evaluate(session, touched, tip.height if tip else None, now)
            self.watch.load_pending(session)
        self._notify(touched)
        return len(matches)

    def handle_removed(self, txid: str) -> None:
        """ZMQ `sequence` said a transaction left the mempool for a reason other than a block
        (replaced, conflicted, evicted, expired): if it paid us, it stops counting now."""
        if txid not in set(self.watch.pending_spends.values()):
            return
        now = self.clock()
        with self.database.job_session() as session:
            tip = stored_tip(session)
            touched: set[int] = set()
            for payment in session.scalars(
                select(BitcoinPayment).where(
                    BitcoinPayment.txid == txid, BitcoinPayment.status == "mempool"
                )
            ):
                inv.remove_payment(payment, now)
                touched.add(payment.invoice_id)
            self._evaluate(session, touched, tip.height if tip else None, now)
            self.watch.load_pending(session)
        self._notify(touched)

    def handle_raw_tx(self, raw: bytes, refresh: bool = True) -> int:
        """A transaction from ZMQ. `refresh` first picks up invoices created meanwhile; a
        caller handling a burst (a new block publishes all its transactions) refreshes once."""
        try:
            tx = rawtx.parse_tx(raw)
        except rawtx.ParseError:
            log.warning("ignored an unparseable transaction from ZMQ")
            return 0
        if refresh:
            self.refresh_watch()
        return self.handle_tx(tx)

    def refresh_watch(self) -> None:
        with self.database.job_session() as session:
            self._refresh_watch(session)

    # ------------------------------------------------------------ helpers

    def _evaluate(
        self, session: Session, invoice_ids: Iterable[int], tip_height: int | None, now: datetime
    ) -> None:
        evaluate_all(session, invoice_ids, tip_height, self.policy, now)

    def _notify(self, touched: set[int]) -> None:
        if touched and self.on_change is not None:
            self.on_change(touched)

    def _record_status(self, error: str | None) -> None:
        now = self.clock()
        try:
            with self.database.job_session() as session:
                row = session.get(BitcoinWatcherStatus, 1)
                if row is None:
                    row = BitcoinWatcherStatus(id=1, last_error="")
                    session.add(row)
                if error is None:
                    row.last_success_at, row.last_error_at = now, None
                    tip = stored_tip(session)
                    row.tip_height = tip.height if tip else None
                else:
                    row.last_error_at, row.last_error = now, error[:300]
        except Exception:
            log.exception("could not record the watcher's status")

    # ------------------------------------------------------------ the loop

    def run_forever(
        self,
        stop: threading.Event,
        poll_seconds: float,
        zmq_block: str = "",
        zmq_tx: str = "",
        zmq_sequence: str = "",
    ) -> None:
        """Watch until `stop` is set: sync, then sleep until a ZMQ hint or the next poll."""
        subscriber = None
        if zmq_block or zmq_tx or zmq_sequence:
            try:
                subscriber = ZmqSubscriber(
                    zmq_block or None, zmq_tx or None, sequence_endpoint=zmq_sequence or None
                )
            except NodeError as exc:
                log.warning("ZMQ unavailable (%s); polling every %.0f s", exc, poll_seconds)
        backoff = poll_seconds
        try:
            while not stop.is_set():
                if not self.acquire():
                    self.watching = False
                    stop.wait(poll_seconds)  # another worker watches the chain
                    continue
                self.watching = True
                try:
                    self.sync()
                    backoff = poll_seconds
                except NodeError as exc:
                    log.warning("Bitcoin node unavailable, detection delayed: %s", exc)
                    backoff = min(backoff * 2, 300)
                except Exception:
                    log.exception("chain watcher round failed")
                    backoff = min(backoff * 2, 300)
                self._wait(stop, backoff, subscriber)
        finally:
            if subscriber is not None:
                subscriber.close()
            self.watching = False
            self.release()

    def _wait(
        self, stop: threading.Event, seconds: float, subscriber: ZmqSubscriber | None
    ) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if subscriber is None:
                stop.wait(min(remaining, 1.0))
                continue
            try:
                messages = subscriber.receive(int(min(remaining, 0.5) * 1000))
            except NodeError:
                stop.wait(min(remaining, 1.0))
                continue
            new_block = any(topic == "hashblock" for topic, _ in messages)
            if new_block:
                return  # the sync reads the block (and the mempool) anyway
            try:
                if messages:
                    self.refresh_watch()
                for topic, body in messages:
                    if topic == "rawtx":
                        self.handle_raw_tx(body, refresh=False)
                    elif topic == "sequence" and body[32:33] == b"R":
                        self.handle_removed(body[:32].hex())
            except Exception:
                log.exception("could not handle transactions from ZMQ")


def start_watcher(
    database: Database, settings: Settings, stop: threading.Event
) -> threading.Thread | None:
    """Start the chain watcher thread of `shop worker` when a descriptor and node are set."""
    if not settings.bitcoin_descriptor or not settings.bitcoin_rpc_url:
        return None
    node = NodeClient(settings.bitcoin_rpc_url, settings.bitcoin_rpc_cookie or None)
    descriptor = parse_watch_only(settings.bitcoin_descriptor, settings.bitcoin_network)
    watcher = ChainWatcher(
        database,
        node,
        policy_from(settings),
        network=settings.bitcoin_network,
        fingerprint=descriptor.fingerprint(),
    )
    thread = threading.Thread(
        target=watcher.run_forever,
        name="bitcoin-watcher",
        daemon=True,
        args=(
            stop,
            settings.bitcoin_poll_seconds,
            settings.bitcoin_zmq_block,
            settings.bitcoin_zmq_tx,
            settings.bitcoin_zmq_sequence,
        ),
    )
    thread.watcher = watcher  # type: ignore[attr-defined]  # the worker's heartbeat asks it
    thread.start()
    log.info(
        "Bitcoin chain watcher started (poll every %.0f s%s)",
        settings.bitcoin_poll_seconds,
        ", ZMQ"
        if settings.bitcoin_zmq_block or settings.bitcoin_zmq_tx or settings.bitcoin_zmq_sequence
        else "",
    )
    return thread


def expire_invoices_job(database: Database) -> int:
    """Worker job: invoices whose window passed without (enough) payment; no node needed."""
    try:
        policy = policy_from(load_settings())
    except (ConfigError, ValueError):
        policy = BitcoinPolicy()
    with database.job_session() as session:
        return inv.expire_invoices(session, policy)
