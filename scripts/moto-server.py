#!/usr/bin/env python3
"""moto's server for Tributary's tests and local stack, with the requests AWS runs atomically serialised.

moto's TransactWriteItems snapshots each table it touches (a deep copy) and restores the snapshot
when a condition fails, so a write made by a concurrent request in between is lost, and the copy
itself can fail ("dictionary changed size during iteration", answered as an HTML 500). Real
DynamoDB isolates transactions from other writes. Serialising the DynamoDB requests, and only
those, gives moto that isolation.

moto's S3 answers a conditional put (`If-None-Match: *`, how delta-rs commits a log entry) by
checking that the key is absent and then writing it, without a lock: two writers racing for the
same table version can both succeed, and one commit silently replaces the other. Real S3 lets
exactly one win. Conditional S3 writes are serialised for the same reason. Every other request
keeps moto's threaded server.

moto's TransactWriteItems also deep-copies every table it touches before each transaction (to roll
back a failed one): the cost and the memory grow with the table, so a customer table of a few
thousand items made each transaction slow and the server grow by gigabytes. Since the DynamoDB requests
are serialised here, the transaction is checked whole first (every condition, against the state no
other request can change meanwhile) and only then applied; the few items it writes are copied
beforehand, and put back if applying one fails (an item over 400 KB). No table is copied.

A server answers DynamoDB in a process of its own (`DynamoDbProcess`), forked before it serves:
moto's Python threads share one core, and DynamoDB's requests are two thirds of the stack's. That
process answers them one at a time, in the order they came, which is the isolation above.

moto's S3 stores any amount of user metadata; real S3 refuses a PUT whose `x-amz-meta-*` names and
values pass 2 KB (400 MetadataTooLarge). The same refusal is made here, so that a test on the local
stack fails where S3 would.

Fifteen of moto's per-request costs are cut, for a local stack under load (`make load`): a new
TCP connection and thread per request (werkzeug's development server closes every connection after
its answer; `KeepAliveRequestHandler` keeps them open); routing a
request listed moto's package directory each time; each received SQS message counted the whole
queue to read its retention period; each message sent to a queue counted the queue three times,
reading the clock twice per message, to read one FIFO setting (here a send counts nothing, and a
count asked for is one pass with one clock reading);
each SNS notification built and signed a new X.509 certificate (and kept its PEM for the life of
the server), where SNS signs with one certificate for a long time (here one per subscription, each
message still signed with its key); each look-up of a service's backend listed every account under a
global lock; each request was logged (here only those answered 5xx); each receive built the list
of every visible message of the queue, reading the clock twice per message, at each wake-up (here
it reads the queue up to the messages it takes, with one clock reading); each deletion scanned the
queue twice;
each request listed its handler's methods; each update expression was parsed twice per update
(here once per distinct expression); each condition expression was lexed per request (here once
per distinct expression); each update expression's tree was deep-copied with `copy.deepcopy`
before its validation (here with a pickle round trip, the same copy in a third to a half of the time); the
headers of each request went through the `email` package's feed parser (here simple header lines
are read directly, the same message in half the time); and each DynamoDB, SQS, SNS and SSM request went
through moto's Flask app (its request context, routing, host inference, debug-mode checks) only to
reach the one view that answers every action of those services (here the view is called directly).
And two growths AWS does not have: moto kept every message published to a topic (the last 100
here), and every model instance it ever created, copies included (only S3's are kept here).

Each request is counted by service and action; `GET /_tributary/requests` answers the counts, and
`DELETE` answers them and resets them (the cold-start benchmark counts the AWS calls of a function's init).
`GET /_tributary/request-times` answers, by action, the requests and the seconds spent answering them,
and the seconds spent waiting for the serialising locks above (`make load` prints them: they show
what bounds the local stack).

Usage: moto-server.py -H 127.0.0.1 -p 5000   (the same flags as moto_server)
"""

import argparse
import collections
import copy
import ctypes
import datetime
import email.parser
import functools
import http.client
import io
import json
import os
import pickle
import re
import signal
import socket
import sys
import threading
import time

from moto.core.request import Request as MotoRequest
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


S3_MAX_METADATA_BYTES = 2048
# prctl(2): the signal a process gets when its parent ends.
PR_SET_PDEATHSIG = 1
SNS_NOTIFICATIONS_KEPT = 100
S3_MODELS_TRACKED = frozenset({"FakeKey", "FakeMultipart"})
# The `X-Amz-Target` prefix of DynamoDB's own actions (DynamoDB Streams, signed as `dynamodb` too,
# has its own).
DYNAMODB_TARGET = "DynamoDB_20120810."


def transact_write_items_without_table_copies(self, transact_items):
    """moto's DynamoDBBackend.transact_write_items, checked whole and then applied (see above).
    Relies on DynamoDB's requests being answered one at a time (`DynamoDbProcess`, or the lock of
    `SerialisedAtomicRequests` without it): no other DynamoDB request runs meanwhile."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen = set()
    planned = []  # (op type, op, table name, key)
    errors = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        unique = (str(table_name), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            expression = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not expression.expr(current):
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        errors.append((None, None, None))
        planned.append((op_type, op, table_name, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    before = []
    for _, _, table_name, key in planned:
        current = self.get_item(table_name, key)
        before.append((table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    try:
        for op_type, op, table_name, key in planned:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception:
        for table_name, key, attributes in before:
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise


def message_within_retention_period(self, queue_name, message):
    """moto's SQSBackend.is_message_valid_based_on_retention_period without get_queue_attributes,
    which counts every message of the queue (three scans) to read one setting, for each message
    received: the cost of a receive grew with the backlog."""
    from moto.core.utils import unix_time

    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return retention_period + message.sent_timestamp / 1000 > unix_time()


def queue_counts(queue):
    """The three ApproximateNumberOfMessages* of a queue in one pass with one clock reading. moto
    computes each in its own pass, reading the clock twice per message, and builds all of a
    queue's attributes (the three counts with them) for every message sent to it, to read one FIFO
    setting: with a backlog of thousands, each send cost tens of milliseconds. `attributes` is
    patched below to count once per call, and not at all while a message is sent; the three
    properties read that count while it is built."""
    import time

    now = time.time() * 1000.0
    visible = delayed = not_visible = 0
    for message in queue._messages:
        is_delayed = now < message.delayed_until
        if now > message.visible_at:
            if not is_delayed:
                visible += 1
        else:
            not_visible += 1
        if is_delayed:
            delayed += 1
    return visible, delayed, not_visible


def sns_post_data_with_one_certificate(self, message, message_id, subject, message_attributes=None):
    """moto's sns Subscription.get_post_data (the notification an SQS or HTTP subscriber receives),
    with the signing certificate made once per subscription instead of once per message. The
    message is signed with the subscription's key as before (SignatureVersion 2, SHA256). The
    UnsubscribeURL names the subscription's own ARN (moto's names a made-up one)."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.x509.oid import NameOID
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.utils import iso_8601_datetime_with_milliseconds, utcnow
    from moto.moto_api._internal import mock_random
    from moto.sns.models import sns_backends

    region = self.topic.sns_backend.region_name
    # The key is kept with its certificate: moto's private_key() is an lru_cache of 128 entries
    # shared by every subscription, so past 128 subscriptions it would hand out a new key.
    key_name, key = getattr(self, "_tributary_signing", (None, None))
    if key_name is None:
        key = self.private_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")]))
            .issuer_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Amazon"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Amazon RSA 2048 M01"),
                    ]
                )
            )
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(utcnow())
            .not_valid_after(utcnow() + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        key_name = f"SimpleNotificationService-{str(mock_random.uuid4()).replace('-', '')}.pem"
        # Where moto serves the PEM from (an unauthenticated GET, so the default account).
        sns_backends[DEFAULT_ACCOUNT_ID][region]._message_public_keys[key_name] = certificate.public_bytes(
            serialization.Encoding.PEM
        )
        self._tributary_signing = (key_name, key)
    timestamp = iso_8601_datetime_with_milliseconds()
    string_to_sign = (
        f"Message\n{message}\nMessageId\n{message_id}\nTimestamp\n{timestamp}\n"
        f"TopicArn\n{self.topic.arn}\nType\nNotification\n"
    )
    signature = key.sign(string_to_sign.encode("UTF-8"), padding.PKCS1v15(), hashes.SHA256())
    post_data = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": self.topic.arn,
        "Message": message,
        "Timestamp": timestamp,
        "SignatureVersion": "2",
        "Signature": base64.b64encode(signature).decode("utf-8"),
        "SigningCertURL": f"https://sns.{region}.amazonaws.com/{key_name}",
        "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={self.arn}",
    }
    if subject:
        post_data["Subject"] = subject
    if message_attributes:
        post_data["MessageAttributes"] = message_attributes
    return post_data


class VisibleMessages:
    """moto's sqs Queue.messages (the messages a receive may take), read lazily with one clock
    reading: moto built the list of every visible message of the queue, reading the clock twice per
    message, on each receive and on each wake-up of a long poll, when a receive takes at most ten
    and a wake-up only asks whether there is one. With a backlog of thousands that scan was most of
    SQS's time; here a receive reads the queue up to the messages it takes."""

    def __init__(self, queue):
        self.messages = queue._messages
        self.now = time.time() * 1000.0

    def __iter__(self):
        now = self.now
        return (m for m in self.messages if now > m.visible_at and not now < m.delayed_until)

    def __bool__(self):
        return any(True for _ in self)

    def __len__(self):
        return sum(1 for _ in self)


def delete_message_found_once(queue, receipt_handle):
    """moto's sqs Queue.delete_message, stopping at the message: moto scanned the whole queue twice
    per deletion, building a list of each message's receipt handles, so with a backlog of thousands
    every deletion cost milliseconds and the consumers slowed as the queue grew. The queue's list is
    replaced, not changed in place, as moto does (a receive or a count may be reading it)."""
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    if receipt_handle in queue.deleted_messages:
        return  # deleted already: SQS answers success
    # Under the lock a send takes to append, so that neither a send nor another deletion is lost
    # between reading the list and replacing it.
    with queue._messages_lock:
        messages = queue._messages
        for index, message in enumerate(messages):
            if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
                queue._messages = messages[:index] + messages[index + 1 :]
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
                return
    raise ReceiptHandleIsInvalid()


def new_model_tracked_only_where_read(cls, *args, **kwargs):
    """moto's BaseModel.__new__, which appends every model instance it ever creates to its class's
    `instances_tracked` (for moto's dashboard) and never lets go: every copy of a DynamoDB item an
    UpdateItem makes, every SQS message sent and received, stayed in memory for the life of the
    server, so that it grew with each request rather than with what it stores. Only S3's objects and
    uploads are tracked still: moto's S3 reset reads them to close their files."""
    instance = object.__new__(cls)
    if cls.__name__ in S3_MODELS_TRACKED:
        cls.instances_tracked.append(instance)
    return instance


def condition_lexed_once(lex):
    """moto's lexer of condition expressions, its tokens kept per expression (they are tuples)."""

    @functools.lru_cache(maxsize=1024)
    def tokens_of(parser_class, expression):
        return tuple(lex(parser_class(expression, {}, {})))

    def lexed(parser):
        return collections.deque(tokens_of(type(parser), parser.condition_expression))

    return lexed


def tree_copied_by_pickle(deepcopy):
    """moto's update-expression validator deep-copies the expression's tree before resolving names
    and values in it, with `copy.deepcopy` (about a tenth of the DynamoDB process's time under
    load). Its nodes are plain objects: a pickle round trip makes the same independent copy in
    a third to a half of the time. Anything else (the one other caller copies an item's list) and any
    tree that does not pickle is deep-copied as before."""
    from moto.dynamodb.parsing.ast_nodes import Node

    def copied(value):
        if isinstance(value, Node):
            try:
                return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
            except (pickle.PicklingError, TypeError, AttributeError):
                pass
        return deepcopy(value)

    return copied


# A header line the fast path below takes as it is: a name of printable characters other than ":"
# and spaces, then its value, on one line.
SIMPLE_HEADER_LINE = re.compile(r"([\041-\071\073-\176]+):([^\r\n]*)\r?\n\Z")


def headers_parsed_without_email_parser(fp, _class=http.client.HTTPMessage):
    """`http.client.parse_headers`, which `http.server` calls for every request: it hands the
    header block to the `email` package's feed parser, a third of the time moto's server spends
    reading a request. For the one-line `Name: value` headers every client here sends, this makes
    the same message (compat32 keeps a name as sent and a value without its leading blanks and
    line end), in half the time; any other header block (folded lines, a line without a name) goes
    to the feed parser as before, and so does a `multipart/` or `message/` content type, for which
    the feed parser also reads the (empty) body and notes its defects."""
    lines = http.client._read_headers(fp)

    def feed_parsed():
        return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))

    headers = []
    for raw in lines[:-1]:
        match = SIMPLE_HEADER_LINE.match(raw.decode("iso-8859-1"))
        if match is None:
            return feed_parsed()
        name, value = match.group(1), match.group(2).lstrip(" \t")
        # Wider than the parser's own test of the type (any blank before it, parameters): a block
        # sent to the parser for nothing is only slower.
        if name.lower() == "content-type" and ("multipart/" in value.lower() or "message/" in value.lower()):
            return feed_parsed()
        headers.append((name, value))
    message = _class()
    message._headers = headers
    message.set_payload("")
    return message


def patch_moto() -> None:
    from moto import backends
    from moto.core import responses
    from moto.core.base_backend import BackendDict
    from moto.core.common_models import BaseModel
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.sns.models import Subscription, Topic
    from moto.sqs.models import Queue, SQSBackend

    BaseModel.__new__ = staticmethod(new_model_tracked_only_where_read)
    # Module-wide, as http.server calls it through the module: the HTTP clients of this process
    # (urllib3 reads a response's headers with it too) get the same messages as before.
    http.client.parse_headers = headers_parsed_without_email_parser
    DynamoDBBackend.transact_write_items = transact_write_items_without_table_copies
    Subscription.get_post_data = sns_post_data_with_one_certificate
    # moto keeps every message published to a topic, for in-process tests to inspect (nobody reads
    # it through the server): the last hundred are kept, so that the server does not grow by each
    # event's message for as long as it runs.
    topic_init = Topic.__init__

    def topic_keeping_recent_notifications(topic, *args, **kwargs):
        topic_init(topic, *args, **kwargs)
        topic.sent_notifications = collections.deque(maxlen=SNS_NOTIFICATIONS_KEPT)

    Topic.__init__ = topic_keeping_recent_notifications
    # moto lists the accounts (under a global lock) on every backend look-up; the lock only
    # matters the first time an account is seen.
    create_account_backend = BackendDict._create_account_specific_backend

    def account_backend_once(backends_of_service, account_id):
        if not dict.__contains__(backends_of_service, account_id):
            create_account_backend(backends_of_service, account_id)

    BackendDict._create_account_specific_backend = account_backend_once
    SQSBackend.is_message_valid_based_on_retention_period = message_within_retention_period
    counting = threading.local()

    def counts(queue):
        cached = getattr(counting, "counts", None)
        return cached[1] if cached is not None and cached[0] is queue else queue_counts(queue)

    original_attributes = Queue.attributes.fget

    def attributes_counted_once(queue):
        counting.counts = (queue, (0, 0, 0) if getattr(counting, "sending", False) else queue_counts(queue))
        try:
            return original_attributes(queue)
        finally:
            counting.counts = None

    Queue.attributes = property(attributes_counted_once)

    def without_counts(method):
        """`method` with the queue's attributes built without their counts: sending a message reads
        one FIFO setting (ContentBasedDeduplication) out of them, once per message on a standard
        queue (checking it and adding it to the queue read it too, on a FIFO queue), and each time
        counted the whole queue: with a backlog of thousands (`make load` sending leads and
        deliveries at once), a pass over thousands of messages per message sent."""

        @functools.wraps(method)
        def sending(*args, **kwargs):
            before = getattr(counting, "sending", False)
            counting.sending = True
            try:
                return method(*args, **kwargs)
            finally:
                counting.sending = before

        return sending

    SQSBackend._validate_message = without_counts(SQSBackend._validate_message)
    SQSBackend.send_message = without_counts(SQSBackend.send_message)
    Queue.add_message = without_counts(Queue.add_message)
    Queue.messages = property(VisibleMessages)
    Queue.delete_message = delete_message_found_once
    # Each request listed its handler class's methods with inspect.getmembers; a class's methods do
    # not change while the server runs.
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(responses.method_names_from_class)
    Queue.approximate_number_of_messages = property(lambda queue: counts(queue)[0])
    Queue.approximate_number_of_messages_delayed = property(lambda queue: counts(queue)[1])
    Queue.approximate_number_of_messages_not_visible = property(lambda queue: counts(queue)[2])
    # moto parses each update expression twice per UpdateItem, and twice per update of a
    # transaction (its handler, then its backend). A parse depends on the string alone, and nothing
    # changes the tree it returns (the validator resolves names and values on a deep copy): the
    # functions send a handful of distinct expressions, parsed once each here.
    UpdateExpressionParser.make = classmethod(functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make.__func__))
    validators.deepcopy = tree_copied_by_pickle(validators.deepcopy)
    # Each condition expression was lexed anew for every request (a regular expression match per
    # token); the tokens depend on the string alone, and the parse that follows makes new nodes
    # rather than changing them: each distinct expression is lexed once here.
    ConditionExpressionParser._lex_condition_expression = condition_lexed_once(
        ConditionExpressionParser._lex_condition_expression
    )
    # Lists moto's package directory (a stat per service) for every request it routes.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def metadata_bytes(environ) -> int:
    """UTF-8 bytes of the user metadata of a request: names (without `x-amz-meta-`) and values."""
    total = 0
    for key, value in environ.items():
        if key.startswith("HTTP_X_AMZ_META_"):
            name = key[len("HTTP_X_AMZ_META_"):]
            total += len(name.encode()) + len(value.encode("latin-1", "replace"))
    return total


class RequestCounts:
    """What the functions asked AWS for, by service and action (`GET /_tributary/requests`; `DELETE`
    answers and resets): the cold-start benchmark counts the calls a function makes during its init and
    its first invocation. Counting reads the request's headers (and an SNS query-protocol form body,
    put back for moto)."""

    PATH = "/_tributary/requests"
    TIMES_PATH = "/_tributary/request-times"

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.seconds = collections.Counter()
        self.waiting = collections.Counter()

    @staticmethod
    def name(environ):
        auth = environ.get("HTTP_AUTHORIZATION", "")
        service = "?"
        if "Credential=" in auth:
            scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
            if len(scope) >= 4:
                service = scope[3]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            return f"{service} {target.rsplit('.', 1)[-1]}"
        query = environ.get("QUERY_STRING", "")
        for pair in query.split("&"):
            if pair.startswith("Action="):
                return f"{service} {pair[len('Action='):]}"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")
        # SNS's query protocol names the action in its form body; it is read and put back for moto.
        # Never a chunked body (no length) nor an S3 upload.
        if form and length and service != "s3" and not environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            for pair in body.split(b"&"):
                if pair.startswith(b"Action="):
                    return f"{service} {pair[len(b'Action='):].decode('ascii', 'replace')}"
        if service == "s3":
            parts = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)
            kind = "object" if len(parts) == 2 and parts[1] else "bucket"
            return f"s3 {environ.get('REQUEST_METHOD', '?')} {kind}"
        return f"{service} {environ.get('REQUEST_METHOD', '?')}"

    def count(self, environ):
        name = self.name(environ)
        with self.lock:
            self.counts[name] += 1
        return name

    def timed(self, name, seconds, waiting):
        with self.lock:
            self.seconds[name] += seconds
            self.waiting[name] += waiting

    def answer(self, environ, start_response):
        with self.lock:
            if environ.get("PATH_INFO") == self.TIMES_PATH:
                times = {
                    name: {
                        "count": self.counts[name],
                        "seconds": round(seconds, 3),
                        "waiting_for_lock_seconds": round(self.waiting[name], 3),
                    }
                    for name, seconds in sorted(self.seconds.items())
                }
                body = json.dumps(times).encode()
            else:
                body = json.dumps(dict(sorted(self.counts.items()))).encode()
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.counts.clear()
                self.seconds.clear()
                self.waiting.clear()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


class SerialisedAtomicRequests:
    """WSGI middleware: one DynamoDB request at a time (its JSON protocol names the target: the
    DynamoDB process answers them in turn, or this lock serialises them when the app is used without
    `serve`), and one conditional S3 write at a time."""

    WAITING_KEY = "tributary.waiting_for_lock_seconds"
    # Set once the answer is made whole: the connection may then serve the client's next request.
    ANSWERED_KEY = "tributary.answered"

    def __init__(self, app):
        self.app = app
        self.requests = RequestCounts()
        self.dynamodb = threading.Lock()
        self.conditional_puts = threading.Lock()
        self.dispatch_without_flask = services_without_flask()
        # Set by `serve`; None when the app answers without it (then the lock serialises DynamoDB).
        self.dynamodb_process = None

    def lock_for(self, environ):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.dynamodb
        if environ.get("REQUEST_METHOD") == "PUT" and (
            "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ
        ):
            return self.conditional_puts
        return None

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") in (RequestCounts.PATH, RequestCounts.TIMES_PATH):
            answer = self.requests.answer(environ, start_response)
            environ[self.ANSWERED_KEY] = True
            return answer
        name = self.requests.count(environ)
        started = time.perf_counter()
        try:
            answer = list(self.handle(environ, start_response, service=name.split(" ", 1)[0]))
            environ[self.ANSWERED_KEY] = True
            return answer
        finally:
            waiting = environ.get(self.WAITING_KEY, 0.0)
            self.requests.timed(name, time.perf_counter() - started, waiting)

    def handle(self, environ, start_response, service):
        if environ.get("REQUEST_METHOD") == "PUT" and metadata_bytes(environ) > S3_MAX_METADATA_BYTES:
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>MetadataTooLarge</Code>'
                b"<Message>Your metadata headers exceed the maximum allowed metadata size.</Message></Error>"
            )
            start_response("400 Bad Request", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        app = self.app
        if self.dynamodb_process is not None and environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET):
            # Whatever its scope, method or path: the tables are only there. It answers one request
            # at a time itself, no lock to take here.
            return self.dynamodb_process.answer(environ, start_response)
        view = self.dispatch_without_flask.get(service)
        if (
            view is not None
            and environ.get("REQUEST_METHOD") == "POST"
            and environ.get("PATH_INFO") == "/"
            and environ.get("HTTP_X_AMZ_TARGET", "").startswith(view[0])
        ):
            app = functools.partial(answer_without_flask, view[1])
        lock = self.lock_for(environ)
        if lock is None:
            return app(environ, start_response)
        waiting_since = time.perf_counter()
        with lock:
            environ[self.WAITING_KEY] = time.perf_counter() - waiting_since
            # The body is produced inside the lock: moto computes it eagerly, but be sure.
            return list(app(environ, start_response))


def services_without_flask():
    """The services (as a request's credential scope names them) whose every action moto answers
    with one view on `POST /`, each with the `X-Amz-Target` prefix its requests carry ("" for SNS's
    query protocol, which has none; DynamoDB Streams, signed as `dynamodb` too, has its own target
    and backend and stays on moto's app): their requests go to that view directly
    (`answer_without_flask`)."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.sns.responses import SNSResponse
    from moto.sqs.responses import SQSResponse
    from moto.ssm.responses import SimpleSystemManagerResponse

    return {
        "dynamodb": (DYNAMODB_TARGET, DynamoHandler.dispatch),
        "sns": ("", SNSResponse.dispatch),
        "sqs": ("", SQSResponse.dispatch),
        "ssm": ("", SimpleSystemManagerResponse.dispatch),
    }


def answer_without_flask(dispatch, environ, start_response):
    """A request answered by moto's view for it (`dispatch`) as moto's Flask wrapper of that view
    answers it (`convert_to_flask_response`: its `ClientError`s as 400, moto's own errors rendering
    themselves, anything else a 500 from the server as Flask's debug mode lets it through), without
    the app around the view: its request context, routing, host inference and debug-mode checks
    were about a fifth of moto's time per request under load (`make load`, py-spy). Two things the
    app did are not done: flask_cors's `Access-Control-Allow-Origin: *` on every answer (no SDK reads
    it; the console talks to our API, not to moto) and moto's request recorder (off unless
    `MOTO_ENABLE_RECORDING`, which nothing here sets)."""
    from botocore.exceptions import ClientError
    from flask import Response  # Flask's, for its default content type (text/html) on bodies moto types not
    from werkzeug.exceptions import HTTPException

    request = ServerRequest(environ)
    try:
        result = dispatch(request, request.raw_url, dict(request.headers))
    except ClientError as error:
        result = 400, {}, error.response["Error"]["Message"]
    except HTTPException as error:  # moto's own errors (RESTError) answer themselves
        return error(environ, start_response)
    status, headers, body = result if len(result) == 3 else (200, {}, result)
    return Response(response=body, status=status, headers=headers)(environ, start_response)


class DynamoDbProcess:
    """moto's DynamoDB answered in a process of its own, forked from the server before it serves.

    moto's threads share one core (Python's GIL), and under load (`make load`) that core was the
    local stack's bound, two thirds of its requests DynamoDB's. Here the server still reads each
    DynamoDB request (HTTP, counting) and this process answers it with moto's DynamoDB view, in
    parallel with the server: the tables live only here (moto's dashboard and `/moto-api/` in the
    server see an empty DynamoDB). It answers one request at a time, in the order they came, which
    gives DynamoDB's requests the isolation the lock of `SerialisedAtomicRequests` gives them in the
    server (the lock is not taken for them). The requests go down one pipe, each with a number, and
    one thread of the server reads the answers back and wakes the request's thread, so that
    requests queue in the pipe rather than behind a lock held for the round trip. The process dies
    with the server (PR_SET_PDEATHSIG); if it dies first, every DynamoDB request is answered 500
    from then on, and the server's log says how it ended."""

    FAILED = (
        "500 INTERNAL SERVER ERROR",
        [("Content-Type", "text/plain")],
        b"moto's DynamoDB process failed on this request (the server's log says why)",
    )

    def __init__(self):
        import gc
        import itertools
        import multiprocessing

        server, worker = multiprocessing.Pipe()
        parent = os.getpid()
        # What moto built so far stays in pages the two processes share, rather than being copied
        # into the child page by page as the garbage collector touches it.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            server.close()
            self.serve(worker, parent)
        worker.close()
        self.pid = pid
        self.connection = server
        self.sending = threading.Lock()
        self.numbers = itertools.count()
        self.waiting = {}
        self.gone = False
        threading.Thread(target=self.read_answers, name="dynamodb-answers", daemon=True).start()

    def answer(self, environ, start_response):
        """Sends the request (its body and the environ's plain values) and answers what comes back."""
        # Whole already, however it was framed: `serve`'s request handler reads each body before
        # the app sees it (`KeepAliveRequestHandler.make_environ`).
        body = environ["wsgi.input"].read()
        plain = {key: value for key, value in environ.items() if isinstance(value, (str, bool, int, float, tuple, dict))}
        slot = [threading.Event(), self.FAILED]
        with self.sending:
            if self.gone:
                slot[0].set()
            else:
                number = next(self.numbers)
                self.waiting[number] = slot
                try:
                    self.connection.send((number, plain, body))
                except OSError:  # the process is gone; its reader answers the others
                    self.waiting.pop(number, None)
                    slot[0].set()
        slot[0].wait()
        status, headers, content = slot[1]
        start_response(status, headers)
        return [content]

    def read_answers(self):
        try:
            while True:
                number, answer = self.connection.recv()
                slot = self.waiting.pop(number)
                slot[1] = answer
                slot[0].set()
        except BaseException as error:  # noqa: BLE001 — whatever ends the reader, nothing waits forever
            ended = "ended"
            if not isinstance(error, (EOFError, OSError)):
                ended = f"stopped being read ({error!r})"
            else:
                try:
                    _, status = os.waitpid(self.pid, 0)
                    ended = f"ended ({'signal ' + str(os.WTERMSIG(status)) if os.WIFSIGNALED(status) else 'exit ' + str(os.WEXITSTATUS(status))})"
                except ChildProcessError:
                    pass
            print(f"moto's DynamoDB process {ended}: DynamoDB requests are answered 500 from now on", file=sys.stderr, flush=True)
            with self.sending:
                self.gone = True
                for slot in self.waiting.values():
                    slot[0].set()
                self.waiting.clear()

    @staticmethod
    def serve(connection, parent):
        try:
            forked_from(parent)
            # Ctrl-C reaches the whole process group; the server's end ends this one.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            view = services_without_flask()["dynamodb"][1]
            while True:
                try:
                    number, environ, body = connection.recv()
                except EOFError:  # the server is gone
                    os._exit(0)
                environ["wsgi.input"] = io.BytesIO(body)
                environ["wsgi.errors"] = sys.stderr
                answered = {}

                def start_response(status, headers, exc_info=None):
                    answered["status"], answered["headers"] = status, headers

                try:
                    content = b"".join(answer_without_flask(view, environ, start_response))
                    reply = (number, (answered["status"], answered["headers"], content))
                    connection.send(reply)
                except Exception:  # noqa: BLE001 — a 500 as the server gives, the traceback in its log
                    import traceback

                    traceback.print_exc()
                    connection.send((number, DynamoDbProcess.FAILED))
        except BaseException as error:  # noqa: BLE001 — the server's log is where a test reads why
            print(f"moto's DynamoDB process failed: {error!r}", file=sys.stderr, flush=True)
            os._exit(1)


class ServerRequest(MotoRequest):
    """moto's request as its server builds it (`BackendRequest`, without Flask's part)."""

    from_wsgi_server = True


def stream_at_its_end():
    """A socket that is always readable and always at its end (its peer is closed)."""
    at_end, peer = socket.socketpair()
    peer.close()
    return at_end


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler with keep-alive connections, logging only the requests answered 5xx
    (a log line per request cost about a tenth of the server's time under load).

    Werkzeug's development server closes the connection after every answer, since it cannot tell
    where an unread request body ends; after answering, it reads whatever the socket still holds
    and throws it away. Under load (`make load`) that was a new connection per AWS call, about 470
    a second: a thread started and a socket accepted per request here, a TCP connection made per
    request by every SDK client. Here the whole body is read before the request is answered (so the
    connection is at the next request when the answer is sent), werkzeug's drain is shown a stream
    at its end rather than the socket (it would read the client's next request), and its
    `Connection: close` is not sent for an answer the app made whole: the connection stays open
    unless the client asks to close it or speaks HTTP/1.0, its request could not be read (a body
    cut short, a length that is not one or two lengths, a request line or headers `http.server`
    refuses), or the app failed (werkzeug's 500 then says `Connection: close`)."""

    DRAINED = stream_at_its_end()
    # An answer is written in two parts (head, body): on a connection kept open, Nagle's algorithm
    # held the body back until the client's delayed acknowledgement of the head, 40 ms per request.
    disable_nagle_algorithm = True

    def make_environ(self):
        environ = super().make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's reader stops at the last chunk
            body = environ["wsgi.input"].read()
        else:
            # Where the body ends must be known, or the connection ends here.
            lengths = {value.strip(" \t") for value in self.headers.get_all("Content-Length") or ["0"]}
            declared = lengths.pop() if len(lengths) == 1 else ", ".join(sorted(lengths))
            if not re.fullmatch("[0-9]+", declared):
                raise ConnectionResetError(f"Content-Length {declared!r} is not one length")
            length = int(declared)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise ConnectionResetError(f"the request's body ended after {len(body)} of {length} bytes")
        environ["wsgi.input"] = io.BytesIO(body)
        self.connection, self.rfile = self.DRAINED, io.BytesIO()
        return environ

    def run_wsgi(self):
        connection, rfile = self.connection, self.rfile
        self.environ = {}
        try:
            super().run_wsgi()
        finally:
            self.connection, self.rfile = connection, rfile
        if not self.environ.get(SerialisedAtomicRequests.ANSWERED_KEY):
            self.close_connection = True
        # An answer http.server makes itself (a request line or headers it cannot parse) comes
        # before any environ: it keeps its `Connection: close`.
        self.environ = {}

    def send_header(self, keyword, value):
        # Dropped for an answer the app made whole to an HTTP/1.1 request (an HTTP/1.0 client
        # expects the close); kept, and the connection closed, otherwise.
        answered = getattr(self, "environ", {}).get(SerialisedAtomicRequests.ANSWERED_KEY)
        if (
            answered
            and self.request_version == "HTTP/1.1"
            and keyword.lower() == "connection"
            and value.lower() == "close"
        ):
            return
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-"):
        if str(code).startswith("5"):
            super().log_request(code, size)


def application():
    patch_moto()
    return SerialisedAtomicRequests(DomainDispatcherApplication(create_backend_app))


def serve(app, host: str, port: int) -> None:
    app.dynamodb_process = DynamoDbProcess()
    run_simple(host, port, app, threaded=True, request_handler=KeepAliveRequestHandler)


# A read-only request per service: answering one builds what moto builds on first use (the
# service's app, its backend for the account, botocore's model of its protocol), and stores nothing.
WARM_UP_REQUESTS = (
    ("dynamodb", {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"}, "{}"),
    ("s3", {}, None),
    ("sns", {"Content-Type": "application/x-www-form-urlencoded"}, "Action=ListTopics&Version=2010-03-31"),
    ("sqs", {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}, "{}"),
    ("ssm", {"X-Amz-Target": "AmazonSSM.DescribeParameters", "Content-Type": "application/x-amz-json-1.1"}, "{}"),
)


def warm_up(dispatcher) -> None:
    from werkzeug.test import Client

    client = Client(dispatcher)
    for service, headers, body in WARM_UP_REQUESTS:
        scope = f"Credential=testing/20260101/us-east-1/{service}/aws4_request"
        headers = {**headers, "Authorization": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0"}
        answer = client.get("/", headers=headers) if body is None else client.post("/", headers=headers, data=body)
        if answer.status_code != 200:
            raise RuntimeError(f"warming up {service}: HTTP {answer.status_code} {answer.get_data(as_text=True)[:200]}")


def serve_forks(host: str) -> None:
    """One server per request, forked from this process with moto imported and its services built.

    Starting moto costs about 3 s of CPU (importing moto, building each service's app); a test binary
    starts one server per test. This process pays it once: each line `serve <port> <log file>` on
    standard input forks a server on that port and answers its pid, `stop <pid>` stops one and answers
    `stopped` (or `unknown` for a pid it did not fork). At the end of its input (the test process has
    exited, however) it stops those left; a server also dies with this process, whatever kills it.
    The servers share nothing after the fork: each has its own, empty, AWS and its own random ids."""
    app = application()
    warm_up(app.app)
    servers = set()
    for line in sys.stdin:
        words = line.rstrip("\n").split(" ", 2)
        if len(words) == 3 and words[0] == "serve" and words[1].isdigit():
            port, log_path = int(words[1]), words[2]
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                serve_child(app, host, port, log_path, parent)
            servers.add(pid)
            print(pid, flush=True)
        elif len(words) == 2 and words[0] == "stop" and words[1].isdigit():
            pid = int(words[1])
            if pid in servers:
                stop(pid)
                servers.discard(pid)
                print("stopped", flush=True)
            else:
                print("unknown", flush=True)
        else:
            print(f"error: {line.strip()!r} is neither `serve <port> <log>` nor `stop <pid>`", flush=True)
    for pid in servers:
        stop(pid)


def forked_from(parent: int) -> None:
    """What a process forked here (a server, a server's DynamoDB process) does first. It is killed
    with its parent, however that ends (PR_SET_PDEATHSIG), so that none outlives it; a parent gone
    before that was set is seen as a new parent pid. SIGTERM ends it at once. And it draws its own
    ids: moto draws them (messages, receipts, subscriptions) from its own generator, which the fork
    copied, so without a new seed every forked process would give the same ids."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    mock_random.seed()


def serve_child(app, host: str, port: int, log_path: str, parent: int) -> None:
    try:
        forked_from(parent)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        serve(app, host, port)
    except BaseException as error:  # noqa: BLE001 — the log file is where the test reads why
        print(f"moto server on port {port} failed: {error!r}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--serve-forks", action="store_true", help="start servers on request (see serve_forks)")
    args = parser.parse_args()
    if args.serve_forks:
        serve_forks(args.host)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(application(), args.host, args.port)


if __name__ == "__main__":
    main()
