#!/usr/bin/env python3
"""Self-test of tests/mock/ppmock.py (stdlib unittest; starts the mock on port 0)."""

import base64
import collections
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, 'ppmock.py')
NOW = '2024-05-02T12:00:20.500Z'          # fixed mock clock for most tests
AUTH = 'Basic ' + base64.b64encode(b'mock-principal:mock-secret-value').decode()


class Mock:
    """A running ppmock subprocess."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix='ppmock-test-')
        self.port_file = os.path.join(self.dir, 'port')
        self.proc = subprocess.Popen([sys.executable, MOCK, '--port', '0', '--port-file', self.port_file,
                                      '--log', os.path.join(self.dir, 'log')] + list(extra),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError('mock exited: %s' % self.proc.stderr.read().decode())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('mock did not start')
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.base = 'http://127.0.0.1:%d' % self.port

    def stop(self, sig=signal.SIGTERM):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            rc = self.proc.returncode
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    # ---- HTTP helpers --------------------------------------------------
    def req(self, path, params=None, method='GET', body=None, headers=None, auth=True, timeout=20):
        url = self.base + path
        if params:
            url += '?' + urllib.parse.urlencode(params, doseq=True)
        h = dict(headers or {})
        if auth is True:
            h['Authorization'] = AUTH
        elif auth:
            h['Authorization'] = auth
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault('Content-Type', 'application/json')
        r = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def siem(self, path='/v2/siem/all', **params):
        params.setdefault('format', 'json')
        st, h, b = self.req(path, params)
        if st != 200:
            raise AssertionError('HTTP %d: %r' % (st, b))
        return json.loads(b)

    def ctl(self, path, params=None, body=None):
        st, h, b = self.req('/__mock/' + path, params, method='POST' if body is not None else 'GET',
                            body=body, auth=False)
        if st != 200:
            raise AssertionError('control %s -> %d %r' % (path, st, b))
        return json.loads(b) if h.get('Content-Type', '').startswith('application/json') else b

    def fault(self, **f):
        return self.ctl('fault', body=f)


def identity(rec):
    """A SIEM record's identity: its `id`, else the SHA-256 of its bytes as sent
    (the mock's JSON is compact and UTF-8, so dumping the parsed record again
    gives those bytes)."""
    if isinstance(rec.get('id'), str):
        return rec['id']
    raw = json.dumps(rec, ensure_ascii=False, separators=(',', ':')).encode('utf-8')
    return 'sha256:' + hashlib.sha256(raw).hexdigest()


def keys(env):
    out = {}
    for k, v in env.items():
        if isinstance(v, list):
            out[k] = [identity(r) for r in v]
    return out


class SiemTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = Mock('--seed', '7', '--now', NOW)

    @classmethod
    def tearDownClass(cls):
        rc = cls.m.stop()
        assert rc == 0, 'mock exit code %r' % rc

    def setUp(self):
        self.m.ctl('reset', body={})

    def test_health(self):
        self.assertEqual(self.m.ctl('health'), b'ok\n')

    def test_auth(self):
        p = {'format': 'json', 'sinceSeconds': '300'}
        st, h, b = self.m.req('/v2/siem/all', p, auth=False)
        self.assertEqual(st, 401)
        self.assertTrue(h['Content-Type'].startswith('text/plain'))
        self.assertTrue(b)
        bad = 'Basic ' + base64.b64encode(b'mock-principal:wrong').decode()
        self.assertEqual(self.m.req('/v2/siem/all', p, auth=bad)[0], 401)
        self.assertEqual(self.m.req('/v2/siem/all', p, auth='Bearer x')[0], 401)
        self.assertEqual(self.m.req('/v2/siem/all', p)[0], 200)

    def test_parameter_errors(self):
        cases = [
            {},                                                        # none of the three
            {'sinceSeconds': '300', 'sinceTime': '2024-05-02T11:30:00Z'},  # two of them
            {'interval': '2024-05-02T11:00:00Z/2024-05-02T11:00:29Z'},  # < 30 s
            {'interval': '2024-05-02T10:00:00Z/2024-05-02T11:00:00.001Z'},  # > 1 h
            {'interval': 'PT61M/2024-05-02T11:00:00Z'},
            {'sinceSeconds': '3601'}, {'sinceSeconds': '10'}, {'sinceSeconds': '-5'},
            {'interval': 'garbage'}, {'interval': '2024-05-02T11:00:00Z'},
            {'interval': '2024-05-02T11:00:00Z/2024-05-02T11:30:00Z', 'format': 'xml'},
            {'interval': '2024-05-02T11:00:00Z/2024-05-02T11:30:00Z', 'threatType': 'bogus'},
            {'interval': '2024-05-02T11:00:00Z/2024-05-02T11:30:00Z', 'threatStatus': 'bogus'},
            {'interval': '2024-04-25T11:00:00Z/2024-04-25T11:30:00Z'},  # > 7 days back
            {'interval': '2024-05-02T13:00:00Z/2024-05-02T13:30:00Z'},  # starts in the future
        ]
        for p in cases:
            p.setdefault('format', 'json')
            st, h, b = self.m.req('/v2/siem/all', p)
            self.assertEqual(st, 400, p)
            self.assertTrue(h['Content-Type'].startswith('text/plain'), p)
        st, _, b = self.m.req('/v2/siem/all', {'format': 'json',
                                               'interval': '2024-04-25T11:00:00Z/2024-04-25T11:30:00Z'})
        self.assertIn(b'retention', b)
        # exactly 7 days back, exactly 30 s and exactly 1 h are accepted
        for iv in ('2024-04-25T12:00:20.500Z/PT30S', '2024-05-02T10:00:00Z/PT1H'):
            self.assertEqual(self.m.req('/v2/siem/all', {'format': 'JSON', 'interval': iv})[0], 200, iv)

    def test_interval_forms(self):
        a = keys(self.m.siem(interval='2024-05-02T10:00:00Z/2024-05-02T10:30:00Z'))
        b = keys(self.m.siem(interval='PT30M/2024-05-02T10:30:00Z'))
        c = keys(self.m.siem(interval='2024-05-02T03:00:00-0700/PT30M'))
        d = keys(self.m.siem(interval='2024-05-02T12:00:00.000+02:00/2024-05-02T10:30:00.000000Z'))
        self.assertEqual(a, b)
        self.assertEqual(a, c)
        self.assertEqual(a, d)
        self.assertTrue(sum(len(v) for v in a.values()) > 0)

    def test_end_clamped_and_since(self):
        env = self.m.siem(interval='2024-05-02T11:30:00Z/2024-05-02T12:10:00Z')
        self.assertEqual(env['queryEndTime'], '2024-05-02T12:00:20Z')
        exp = self.m.ctl('expected', {'start': '2024-05-02T11:30:00Z', 'end': '2024-05-02T12:00:20Z'})
        self.assertEqual(keys(env), exp)
        exp = self.m.ctl('expected', {'start': '2024-05-02T11:30:00Z', 'end': '2024-05-02T12:10:00Z', 'clamp': 1})
        self.assertEqual(keys(env), exp)
        future = self.m.ctl('expected', {'start': '2024-05-02T11:30:00Z', 'end': '2024-05-02T12:10:00Z'})
        self.assertGreater(sum(map(len, future.values())), sum(map(len, exp.values())))
        # sinceSeconds rounds the end to the nearest minute, possibly after now
        self.m.ctl('config', body={'now': '2024-05-02T12:00:40Z'})
        try:
            env = self.m.siem(sinceSeconds='60')
            self.assertEqual(env['queryEndTime'], '2024-05-02T12:01:00Z')
            self.assertEqual(keys(env), self.m.ctl('expected', {'start': '2024-05-02T12:00:00Z',
                                                                'end': '2024-05-02T12:01:00Z'}))
        finally:
            self.m.ctl('config', body={'now': NOW})
        env = self.m.siem(sinceSeconds='600')
        self.assertEqual(env['queryEndTime'], '2024-05-02T12:00:00Z')     # now rounded to the minute
        exp = self.m.ctl('expected', {'start': '2024-05-02T11:50:00Z', 'end': '2024-05-02T12:00:00Z'})
        self.assertEqual(keys(env), exp)
        env = self.m.siem(sinceTime='2024-05-02T11:15:00Z')
        self.assertEqual(env['queryEndTime'], '2024-05-02T12:00:00Z')
        exp = self.m.ctl('expected', {'start': '2024-05-02T11:15:00Z', 'end': '2024-05-02T12:00:00Z'})
        self.assertEqual(keys(env), exp)

    def test_default_syslog(self):
        iv = '2024-05-02T10:00:00Z/2024-05-02T10:20:00Z'
        st, h, b = self.m.req('/v2/siem/all', {'interval': iv})
        self.assertEqual(st, 200)
        self.assertTrue(h['Content-Type'].startswith('text/plain'))
        lines = b.decode('utf-8').split('\n')
        self.assertEqual(lines[-1], '')
        lines = lines[:-1]
        env = self.m.siem(interval=iv)
        self.assertEqual(len(lines), sum(len(v) for k, v in env.items() if isinstance(v, list)))
        toks = {'MSGDLV': 0, 'MSGBLK': 0, 'CLKPER': 0, 'CLKBLK': 0}
        for l in lines:
            self.assertRegex(l, r'^<\d+>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tap-api-v2\.proofpoint\.com tap - '
                                r'(MSGDLV|MSGBLK|CLKPER|CLKBLK) - \w+="')
            toks[l.split(' ')[5]] += 1
        self.assertEqual(toks['MSGDLV'], len(env['messagesDelivered']))
        self.assertEqual(toks['CLKBLK'], len(env['clicksBlocked']))
        self.assertIn('threatsInfoMap="[{\\"threat', b.decode())
        st, h, b2 = self.m.req('/v2/siem/all', {'interval': iv, 'format': 'SysLog'})
        self.assertEqual(b, b2)

    def test_half_open_partition(self):
        full = self.m.ctl('expected', {'start': '2024-05-02T10:00:00Z', 'end': '2024-05-02T11:00:00Z',
                                       'full': '1'})
        # split exactly at an event's selection time: the event belongs to the second window only
        rec = full['clicksPermitted'][len(full['clicksPermitted']) // 2]
        mid = max(rec['clickTime'], rec['threatTime'])
        a = keys(self.m.siem(interval='2024-05-02T10:00:00Z/' + mid))
        b = keys(self.m.siem(interval=mid + '/2024-05-02T11:00:00Z'))
        u = keys(self.m.siem(interval='2024-05-02T10:00:00Z/2024-05-02T11:00:00Z'))
        self.assertIn(rec['id'], b['clicksPermitted'])
        self.assertNotIn(rec['id'], a['clicksPermitted'])
        for s in u:
            self.assertEqual(set(a[s]) & set(b[s]), set(), s)
            self.assertEqual(sorted(a[s] + b[s]), sorted(u[s]), s)

    def test_expected_matches_api(self):
        start, end = '2024-05-02T09:13:00Z', '2024-05-02T10:13:00Z'
        for path in ('/v2/siem/all', '/v2/siem/issues', '/v2/siem/messages/blocked',
                     '/v2/siem/messages/delivered', '/v2/siem/clicks/blocked', '/v2/siem/clicks/permitted'):
            env = self.m.siem(path, interval=start + '/' + end)
            exp = self.m.ctl('expected', {'path': path, 'start': start, 'end': end})
            self.assertEqual(keys(env), exp, path)
            self.assertEqual(list(env)[0], 'queryEndTime')
            self.assertEqual(list(env)[1:], list(exp))
        allst = ['active', 'cleared', 'falsePositive']
        env = self.m.siem(interval=start + '/' + end, threatStatus=allst)
        exp = self.m.ctl('expected', {'start': start, 'end': end, 'threatStatus': allst})
        self.assertEqual(keys(env), exp)
        dflt = self.m.ctl('expected', {'start': start, 'end': end})
        self.assertGreater(sum(map(len, exp.values())), sum(map(len, dflt.values())))
        # identities unique across the day, and those of the full records
        day = self.m.ctl('expected', {'start': '2024-05-01T12:00:00Z', 'end': '2024-05-02T12:00:00Z',
                                      'threatStatus': allst})
        allkeys = [k for v in day.values() for k in v]
        self.assertEqual(len(allkeys), len(set(allkeys)))
        self.assertTrue(any(k.startswith('sha256:') for k in day['messagesBlocked']))
        full = self.m.ctl('expected', {'start': start, 'end': end, 'full': '1'})
        self.assertEqual({s: [identity(r) for r in v] for s, v in full.items()},
                         self.m.ctl('expected', {'start': start, 'end': end}))

    def test_filters(self):
        iv = '2024-05-02T10:00:00Z/2024-05-02T11:00:00Z'
        env = self.m.siem(interval=iv, threatStatus='falsePositive')
        for s, recs in env.items():
            if s.startswith('clicks'):
                for r in recs:
                    self.assertEqual(r['threatStatus'], 'falsePositive')
            elif s.startswith('messages'):
                for r in recs:
                    self.assertIn('falsePositive', [t['threatStatus'] for t in r['threatsInfoMap']])
        env = self.m.siem(interval=iv, threatType=['attachment'])
        self.assertEqual(env['clicksPermitted'], [])
        for r in env['messagesDelivered'] + env['messagesBlocked']:
            self.assertIn('attachment', [t['threatType'].lower() for t in r['threatsInfoMap']])
        env = self.m.siem(interval=iv)
        for r in env['clicksBlocked'] + env['clicksPermitted']:
            self.assertIn(r['threatStatus'], ('active', 'cleared'))

    def test_record_shapes(self):
        exp = self.m.ctl('expected', {'start': '2024-05-02T00:00:00Z', 'end': '2024-05-02T12:00:00Z',
                                      'full': '1'})
        msgs = exp['messagesDelivered'] + exp['messagesBlocked']
        clicks = exp['clicksPermitted'] + exp['clicksBlocked']
        self.assertTrue(any('threatId' in t for r in exp['messagesBlocked'] for t in r['threatsInfoMap']))
        self.assertTrue(all('threatID' in t for r in exp['messagesDelivered'] for t in r['threatsInfoMap']))
        self.assertEqual({type(r['completelyRewritten']).__name__ for r in msgs}, {'bool', 'str'})
        self.assertIn('na', {r['completelyRewritten'] for r in msgs})
        self.assertEqual({type(r['fromAddress']).__name__ for r in msgs}, {'list', 'str', 'NoneType'})
        # impostorScore: an integer, or 0.0 (both recorded); the other scores integers
        imp = [r['impostorScore'] for r in msgs]
        self.assertTrue(all(type(v) is int or v == 0.0 for v in imp))
        self.assertEqual({type(v).__name__ for v in imp}, {'int', 'float'})
        self.assertTrue(any(type(v) is int and v > 0 for v in imp))
        for f in ('spamScore', 'phishScore', 'malwareScore'):
            self.assertTrue(all(type(r[f]) is int for r in msgs), f)
        self.assertTrue(any(r['messageSize'] > 2 ** 32 for r in msgs))
        self.assertTrue(any(r['messageSize'] > 2 ** 53 for r in msgs))
        subjects = {r['subject'] for r in msgs}
        self.assertTrue(any(s and '\u2028' in s for s in subjects))
        self.assertTrue(any(s and '"' in s and '\\' in s for s in subjects))
        self.assertTrue(any(s and any(ord(c) > 0xFFFF for c in s) for s in subjects))
        # one recipient per message event; clicks: a string, or an array (recorded)
        self.assertTrue(all(isinstance(r['recipient'], list) and len(r['recipient']) == 1 for r in msgs))
        self.assertEqual({type(r['recipient']).__name__ for r in clicks}, {'str', 'list'})
        self.assertTrue(all(len(r['recipient']) == 1 for r in clicks if isinstance(r['recipient'], list)))
        self.assertTrue(all('threatURL' in r and 'id' in r for r in clicks))
        camp = collections.Counter(('campaignId' in r, 'campaignID' in r) for r in clicks)
        self.assertEqual(set(camp), {(True, False), (False, True), (False, False)})
        self.assertTrue(any(r['classification'].isupper() for r in clicks))
        self.assertTrue(any('/#/' in r['threatURL'] for r in clicks))
        # `id`: on every message but the documented-sample style ones (clusterId, threatId)
        for r in msgs:
            self.assertEqual('id' in r, 'cluster' in r, r['GUID'])
            if 'id' in r:
                self.assertRegex(r['id'], r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
        # delivered events with most members null (recorded)
        sparse = [r for r in exp['messagesDelivered'] if r['messageSize'] == 0]
        self.assertTrue(sparse)
        for r in sparse:
            self.assertEqual((r['subject'], r['toAddresses'], r['messageParts'], r['sender'], r['messageID']),
                             (None, None, None, '', ''))
        parts = [p for r in msgs for p in (r['messageParts'] or [])]
        self.assertTrue(any('sandboxStatus' not in p for p in parts) and any('sandboxStatus' in p for p in parts))
        self.assertTrue(any('clusterId' in r for r in msgs) and any('cluster' in r for r in msgs))
        # messages selected by max(messageTime, threatTime): both occur
        self.assertTrue(any(r['messageTime'] < max(t['threatTime'] for t in r['threatsInfoMap']) for r in msgs))
        # raw UTF-8 on the wire, stable member order
        st, h, b = self.m.req('/v2/siem/messages/delivered',
                              {'format': 'json', 'interval': '2024-05-02T10:00:00Z/PT1H'})
        self.assertIn('application/json', h['Content-Type'])
        self.assertEqual(b, self.m.req('/v2/siem/messages/delivered',
                                       {'format': 'json', 'interval': '2024-05-02T10:00:00Z/PT1H'})[2])
        r0 = json.loads(b)['messagesDelivered'][0]
        self.assertEqual(list(r0)[:5], ['spamScore', 'phishScore', 'threatsInfoMap', 'messageTime', 'impostorScore'])
        doc = [r for r in exp['messagesBlocked'] if 'clusterId' in r][0]
        self.assertEqual(list(doc), sorted(doc))           # the documented sample's order
        self.assertRegex(json.loads(b)['queryEndTime'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')

    def test_one_event_per_recipient(self):
        """A message to several recipients: one event each, sharing GUID, QID,
        messageTime and everything else but `recipient` and `id`."""
        allst = ['active', 'cleared', 'falsePositive']
        exp = self.m.ctl('expected', {'start': '2024-05-01T12:00:00Z', 'end': '2024-05-02T12:00:00Z',
                                      'full': '1', 'threatStatus': allst})
        for s in ('messagesDelivered', 'messagesBlocked'):
            recs = exp[s]
            groups = collections.OrderedDict()
            for n, r in enumerate(recs):
                groups.setdefault(r['GUID'], []).append(n)
            sizes = collections.Counter(len(v) for v in groups.values())
            self.assertEqual(set(sizes), {1, 2, 3, 4}, s)
            self.assertGreater(sum(c for k, c in sizes.items() if k > 1), 0.3 * len(groups), s)
            with_id = 0
            for guid, idx in groups.items():
                self.assertEqual(idx, list(range(idx[0], idx[0] + len(idx))), 'a group is contiguous')
                g = [recs[n] for n in idx]
                rcpts = [r['recipient'][0] for r in g]
                self.assertEqual(len(set(rcpts)), len(g))
                self.assertEqual(sorted(rcpts), sorted(g[0]['toAddresses'] or rcpts))
                ids = [r.get('id') for r in g]
                if ids[0] is not None:
                    with_id += 1
                    self.assertEqual(len(set(ids)), len(g))
                else:
                    self.assertEqual(ids, [None] * len(g))
                strip = [{k: v for k, v in r.items() if k not in ('recipient', 'id')} for r in g]
                self.assertTrue(all(x == strip[0] for x in strip), guid)
                self.assertEqual(len({json.dumps(r, sort_keys=True) for r in g}), len(g))
            self.assertGreater(with_id, 0, s)
        # a group's events are selected together: a window never splits one
        t = max(recs[0]['messageTime'], max(x['threatTime'] for x in recs[0]['threatsInfoMap']))
        a = self.m.ctl('expected', {'start': '2024-05-01T12:00:00Z', 'end': t, 'threatStatus': allst})
        b = self.m.ctl('expected', {'start': t, 'end': '2024-05-02T12:00:00Z', 'threatStatus': allst})
        g0 = [identity(r) for r in recs if r['GUID'] == recs[0]['GUID']]
        self.assertTrue(set(g0) <= set(b['messagesBlocked']) and not set(g0) & set(a['messagesBlocked']))

    def test_empty_window_and_204(self):
        self.m.ctl('config', body={'rate': 0})
        try:
            env = self.m.siem(interval='2024-05-02T10:00:00Z/PT5M')
            self.assertEqual(env, {'queryEndTime': '2024-05-02T10:05:00Z', 'messagesDelivered': [],
                                   'messagesBlocked': [], 'clicksPermitted': [], 'clicksBlocked': []})
            self.m.ctl('config', body={'empty_204': True})
            st, h, b = self.m.req('/v2/siem/all', {'format': 'json', 'interval': '2024-05-02T10:00:00Z/PT5M'})
            self.assertEqual((st, b), (204, b''))
        finally:
            self.m.ctl('config', body={'rate': 3, 'empty_204': False})
        st, h, b = self.m.req('/v2/siem/all', {'format': 'json', 'interval': '2024-05-02T10:00:00Z/PT5M'})
        self.assertEqual(st, 200)

    def test_request_log(self):
        self.m.req('/v2/siem/clicks/blocked', {'format': 'json', 'sinceSeconds': '300',
                                               'threatStatus': ['active', 'cleared']})
        self.m.req('/nope', auth=False)
        log = self.m.ctl('requests')
        self.assertEqual(len(log), 2)
        e = log[0]
        self.assertEqual((e['method'], e['path'], e['status']), ('GET', '/v2/siem/clicks/blocked', 200))
        self.assertEqual(e['params']['threatStatus'], ['active', 'cleared'])
        self.assertIn('sinceSeconds=300', e['query'])
        self.assertRegex(e['time'], r'Z$')
        self.assertEqual(log[1]['status'], 404)
        self.m.ctl('reset', body={})
        self.assertEqual(self.m.ctl('requests'), [])

    def test_keepalive(self):
        c = http.client.HTTPConnection('127.0.0.1', self.m.port, timeout=10)
        for _ in range(3):
            c.request('GET', '/v2/siem/all?format=json&sinceSeconds=120', headers={'Authorization': AUTH})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            json.loads(r.read())
        c.close()

    def test_chunked_and_gzip(self):
        self.m.ctl('config', body={'chunked': True, 'gzip': True})
        try:
            c = http.client.HTTPConnection('127.0.0.1', self.m.port, timeout=10)
            c.request('GET', '/v2/siem/all?format=json&interval=2024-05-02T10:00:00Z/PT1H',
                      headers={'Authorization': AUTH, 'Accept-Encoding': 'gzip'})
            r = c.getresponse()
            self.assertEqual(r.getheader('Transfer-Encoding'), 'chunked')
            self.assertEqual(r.getheader('Content-Encoding'), 'gzip')
            body = json.loads(gzip.decompress(r.read()))
            c.close()
        finally:
            self.m.ctl('config', body={'chunked': False, 'gzip': False})
        self.assertEqual(keys(body), keys(self.m.siem(interval='2024-05-02T10:00:00Z/PT1H')))


class FaultTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = Mock('--seed', '3', '--now', NOW)

    @classmethod
    def tearDownClass(cls):
        cls.m.stop()

    def setUp(self):
        self.m.ctl('reset', body={})

    P = {'format': 'json', 'interval': '2024-05-02T10:00:00Z/PT1H'}

    def raw(self, timeout=10):
        c = http.client.HTTPConnection('127.0.0.1', self.m.port, timeout=timeout)
        c.request('GET', '/v2/siem/all?' + urllib.parse.urlencode(self.P), headers={'Authorization': AUTH})
        return c, c.getresponse()

    def test_status_faults(self):
        for code in (500, 502, 503, 504, 400, 401, 404):
            self.m.fault(kind='status', status=code, body='injected %d' % code)
            st, h, b = self.m.req('/v2/siem/all', self.P)
            self.assertEqual((st, b), (code, b'injected %d\n' % code))
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 200)     # consumed
        log = self.m.ctl('requests')
        self.assertEqual([e['status'] for e in log], [500, 502, 503, 504, 400, 401, 404, 200])
        self.assertEqual(log[0]['fault'], 'status')

    def test_fifo_count_and_path(self):
        self.m.ctl('fault', body=[{'kind': 'status', 'status': 503, 'count': 2, 'path': '/v2/siem/clicks'},
                                  {'kind': 'status', 'status': 500}])
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 500)    # first matching for /all
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 200)
        self.assertEqual(self.m.req('/v2/siem/clicks/blocked', self.P)[0], 503)
        self.assertEqual(self.m.req('/v2/siem/clicks/permitted', self.P)[0], 503)
        self.assertEqual(self.m.req('/v2/siem/clicks/permitted', self.P)[0], 200)
        self.m.fault(kind='status', status=500)
        self.m.ctl('reset', body={})
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 200)

    def test_429(self):
        self.m.fault(kind='429', retry_after=7)
        st, h, b = self.m.req('/v2/siem/all', self.P)
        self.assertEqual((st, h.get('Retry-After')), (429, '7'))

    def test_reset(self):
        self.m.fault(kind='reset')
        c, r = self.raw()
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            r.read()
        c.close()
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 200)

    def test_truncate(self):
        self.m.fault(kind='truncate')
        c, r = self.raw()
        n = int(r.getheader('Content-Length'))
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        c.close()
        self.assertEqual(len(cm.exception.partial), n // 2)

    def test_slow(self):
        self.m.fault(kind='slow', seconds=1.0)
        t0 = time.monotonic()
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)

    def test_stall(self):
        self.m.fault(kind='stall', seconds=20)
        t0 = time.monotonic()
        c, r = self.raw(timeout=1.0)
        self.assertEqual(r.status, 200)
        with self.assertRaises((socket.timeout, TimeoutError)):
            r.read()
        c.close()
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(self.m.req('/v2/siem/all', self.P)[0], 200)

    def test_gzip_corrupt(self):
        self.m.fault(kind='gzip_corrupt')
        c, r = self.raw()
        self.assertEqual(r.getheader('Content-Encoding'), 'gzip')
        data = r.read()
        c.close()
        with self.assertRaises(Exception):
            gzip.decompress(data)

    def test_redirect_loop(self):
        self.m.fault(kind='redirect_loop')
        st, h, b = self.m.req('/v2/siem/all', self.P)
        self.assertEqual(st, 302)          # urllib gives up on the loop
        self.assertIn('/v2/siem/all?', h['Location'])
        self.m.ctl('reset', body={})

    def test_bad_fault(self):
        st, _, _ = self.m.req('/__mock/fault', method='POST', body={'kind': 'nope'}, auth=False)
        self.assertEqual(st, 400)


# URL Defense vectors: the repo copy, else the shared reference folder
VECTORS = next((p for p in (os.environ.get('PPMOCK_UD_VECTORS', ''),
                            os.path.join(HERE, '..', 'data', 'urldefense', 'urldefense-vectors.json'),
                            '/work/shared/reference/urldefense-vectors.json') if p and os.path.exists(p)), '')
DIVERGENT = os.path.join(os.path.dirname(VECTORS), 'urldefense-vectors-divergent.json')


class OtherApiTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = Mock('--seed', '5', '--now', NOW, '--casb-path', '/casb/v2/alerts')
        cls.cat = cls.m.ctl('catalog')

    @classmethod
    def tearDownClass(cls):
        assert cls.m.stop() == 0

    def setUp(self):
        self.m.ctl('reset', body={})

    def get(self, path, params=None, **kw):
        st, h, b = self.m.req(path, params, **kw)
        return st, (json.loads(b) if 'json' in h.get('Content-Type', '') else b)

    def test_forensics(self):
        th = [t for t in self.cat['threats'] if t['campaignID']][0]
        st, d = self.get('/v2/forensics', {'threatId': th['id']})
        self.assertEqual(st, 200)
        self.assertEqual([r['scope'] for r in d['reports']], ['THREAT'])
        for ev in d['reports'][0]['forensics']:
            self.assertIsInstance(ev['malicious'], bool)
            self.assertEqual(ev['time'], 0)
            self.assertIn('what', ev)
        st, d = self.get('/v2/forensics', {'threatId': th['id'], 'includeCampaignForensics': 'true'})
        self.assertEqual([r['scope'] for r in d['reports']], ['THREAT', 'CAMPAIGN'])
        self.assertIn('threatStatus', d['reports'][0])
        self.assertNotIn('threatStatus', d['reports'][1])          # as recorded for CAMPAIGN reports
        # what.blacklisted: a bool or 0/1 (recorded both ways)
        bl = set()
        for t in self.cat['threats']:
            for rep in self.get('/v2/forensics', {'threatId': t['id']})[1]['reports']:
                for ev in rep['forensics']:
                    if 'blacklisted' in ev['what']:
                        v = ev['what']['blacklisted']
                        self.assertIn(v, (True, False, 0, 1))
                        bl.add(type(v).__name__)
                    self.assertTrue(all('name' in p and 'os' in p for p in ev['platforms']))
        self.assertEqual(bl, {'bool', 'int'})
        st, d = self.get('/v2/forensics', {'campaignId': th['campaignID']})
        self.assertEqual((st, d['reports'][0]['scope']), (200, 'CAMPAIGN'))
        for p, code in (({}, 400), ({'threatId': th['id'], 'campaignId': th['campaignID']}, 400),
                        ({'campaignId': th['campaignID'], 'includeCampaignForensics': 'true'}, 400),
                        ({'threatId': 'f' * 64}, 404), ({'campaignId': 'nope'}, 404)):
            self.assertEqual(self.get('/v2/forensics', p)[0], code, p)
        self.assertEqual(self.get('/v2/forensics', {'threatId': th['id']}, auth=False)[0], 401)

    @unittest.skipUnless(os.path.exists(VECTORS), 'URL Defense vectors not available')
    def test_url_decode_vectors(self):
        with open(VECTORS) as f:
            vec = json.load(f)
        urls = [v['encoded'] for v in vec]
        st, d = self.get('/v2/url/decode', method='POST', body={'urls': urls}, auth=False)
        self.assertEqual(st, 200)
        self.assertEqual(len(d['urls']), len(vec))
        for v, r in zip(vec, d['urls']):
            self.assertEqual(r['encodedUrl'], v['encoded'])
            if v.get('error'):
                self.assertIs(r['success'], False, v)
                self.assertIn('error', r)
            else:
                self.assertEqual((r['success'], r['decodedUrl']), (True, v['decoded']), v)
                self.assertNotIn('messageGuid', r)
        if os.path.exists(DIVERGENT):
            with open(DIVERGENT) as f:
                div = json.load(f)
            st, d = self.get('/v2/url/decode', method='POST', body={'urls': [v['encoded'] for v in div]})
            for v, r in zip(div, d['urls']):
                exp = v['strict_byte_decoder']
                if 'error' in exp:
                    self.assertIs(r['success'], False, v['encoded'])
                else:
                    self.assertEqual(r.get('decodedUrl'), exp['decoded'], v['encoded'])
                    self.assertIn('messageGuid', r)       # authenticated: extra fields

    def test_url_decode_errors(self):
        bad = 'Basic ' + base64.b64encode(b'mock-principal:wrong').decode()
        self.assertEqual(self.get('/v2/url/decode', method='POST', body={'urls': ['x']}, auth=bad)[0], 401)
        self.assertEqual(self.get('/v2/url/decode', method='POST', body={'nope': 1})[0], 400)
        self.assertEqual(self.get('/v2/url/decode', method='POST', body=b'not json')[0], 400)
        self.assertEqual(self.get('/v2/url/decode')[0], 405)

    def test_campaigns(self):
        iv = '2024-05-01T12:00:00Z/2024-05-02T12:00:00Z'
        exp = self.m.ctl('expected', {'path': '/v2/campaign/ids', 'start': '2024-05-01T12:00:00Z',
                                      'end': '2024-05-02T12:00:00Z'})['campaigns']
        self.assertGreater(len(exp), 5)
        got, page = [], 1
        while True:
            st, d = self.get('/v2/campaign/ids', {'interval': iv, 'size': 4, 'page': page})
            if st == 404:
                break
            self.assertEqual(st, 200)
            got += [c['id'] for c in d['campaigns']]
            page += 1
        self.assertEqual(got, exp)
        st, d = self.get('/v2/campaign/ids', {'interval': iv})
        upd = [c['lastUpdatedAt'] for c in d['campaigns']]
        self.assertEqual(upd, sorted(upd, reverse=True), 'newest first, as recorded')
        for p in ({'interval': '2024-05-01T11:00:00Z/2024-05-02T12:00:00Z'}, {}, {'interval': iv, 'size': 201},
                  {'interval': iv, 'page': 0}):
            self.assertEqual(self.get('/v2/campaign/ids', p)[0], 400, p)
        st, d = self.get('/v2/campaign/' + exp[0])
        self.assertEqual(st, 200)
        self.assertEqual(d['id'], exp[0])
        self.assertIn('\r\n', d['description'])
        for k in ('actors', 'families', 'malware', 'techniques', 'brands', 'campaignMembers'):
            self.assertIsInstance(d[k], list)
        self.assertEqual(self.get('/v2/campaign/00000000-0000-4000-8000-000000000000')[0], 404)

    def test_people_and_threat(self):
        for kind, total_key, dflt, mx in (('vap', 'totalVapUsers', 1000, 1000),
                                          ('top-clickers', 'totalTopClickers', 100, 200)):
            st, d = self.get('/v2/people/' + kind, {'window': 30})
            self.assertEqual(st, 200)
            total = d[total_key]
            self.assertEqual(len(d['users']), min(total, dflt))
            guids = []
            for page in (1, 2, 3, 4, 5):
                guids += [u['identity']['guid'] for u in
                          self.get('/v2/people/' + kind, {'window': 30, 'size': 60, 'page': page})[1]['users']]
            self.assertEqual(len(guids), min(total, 300))
            self.assertEqual(len(set(guids)), len(guids))
            self.assertEqual(d['interval'].split('/')[1], '2024-05-02T12:00:20Z')   # now, to the second
            self.assertTrue(all(re.match(r'^[0-9a-f]{10}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
                                         u['identity']['guid']) for u in d['users']))
            self.assertEqual(self.get('/v2/people/' + kind, {'window': 7})[0], 400)
            self.assertEqual(self.get('/v2/people/' + kind)[0], 400)
            self.assertEqual(self.get('/v2/people/' + kind, {'window': 14, 'size': mx + 1})[0], 400)
        st, d = self.get('/v2/threat/summary/' + self.cat['threats'][0]['id'])
        self.assertEqual((st, d['id']), (200, self.cat['threats'][0]['id']))
        self.assertEqual(self.get('/v2/threat/summary/' + '0' * 64)[0], 404)

    def test_trap(self):
        k = {'Authorization': 'mock-trap-key'}
        self.assertEqual(self.get('/api/incidents', auth=False)[0], 401)
        self.assertEqual(self.get('/api/incidents', auth='wrong')[0], 401)
        a, m, b = '2024-05-01T00:00:00Z', '2024-05-01T13:00:00Z', '2024-05-02T00:00:00Z'
        st, whole = self.get('/api/incidents', {'created_after': a, 'created_before': b}, auth=False, headers=k)
        self.assertEqual(st, 200)
        self.assertIsInstance(whole, list)
        ids = sorted(d['id'] for d in whole)
        exp = self.m.ctl('expected', {'path': '/api/incidents', 'start': a, 'end': b})['incidents']
        self.assertEqual(ids, sorted(exp))
        p1 = self.get('/api/incidents', {'created_after': a, 'created_before': m}, auth=False, headers=k)[1]
        p2 = self.get('/api/incidents', {'created_after': m, 'created_before': b}, auth=False, headers=k)[1]
        self.assertEqual(sorted(d['id'] for d in p1 + p2), ids)
        st, op = self.get('/api/incidents', {'created_after': a, 'created_before': b, 'state': 'open'},
                          auth=False, headers=k)
        self.assertTrue(all(d['state'] == 'Open' for d in op))
        self.assertEqual(self.get('/api/incidents', {'state': 'nope'}, auth=False, headers=k)[0], 400)
        self.assertEqual(self.get('/api/incidents', {'created_after': 'x'}, auth=False, headers=k)[0], 400)
        st, one = self.get('/api/incidents/%d.json' % ids[0], auth=False, headers=k)
        self.assertEqual((st, one['id']), (200, ids[0]))
        self.assertEqual(self.get('/api/incidents/3.json', auth=False, headers=k)[0], 404)
        mdt = {type(e['messageDeliveryTime']).__name__ for d in whole for ev in d['events'] for e in ev['emails']}
        self.assertEqual(mdt, {'dict', 'str'})
        obj = [e['messageDeliveryTime'] for d in whole for ev in d['events'] for e in ev['emails']
               if isinstance(e['messageDeliveryTime'], dict)]
        self.assertTrue(all(set(o) == {'zone', 'millis', 'chronology', 'afterNow', 'equalNow', 'beforeNow'}
                            for o in obj))
        # expanded (the default): events inline, event_ids null; not expanded:
        # events null, event_ids listed (both recorded)
        self.assertTrue(all(d['event_ids'] is None and isinstance(d['events'], list) and d['events']
                            for d in whole))
        st, bare = self.get('/api/incidents', {'created_after': a, 'created_before': b, 'expand_events': 'false'},
                            auth=False, headers=k)
        self.assertEqual(sorted(d['id'] for d in bare), ids)
        for d in bare:
            self.assertIsNone(d['events'])
            self.assertEqual(len(d['event_ids']), d['event_count'])
            self.assertTrue(all(isinstance(x, int) for x in d['event_ids']))
        self.assertIn(None, {d['false_positive_count'] for d in bare} | {d['false_positive_count'] for d in whole})
        self.m.ctl('config', body={'trap_wrap_result': True})
        try:
            st, w = self.get('/api/incidents', {'created_after': a, 'created_before': b}, auth=False, headers=k)
            self.assertEqual(sorted(d['id'] for d in w['result']), ids)
        finally:
            self.m.ctl('config', body={'trap_wrap_result': False})
        st, mem = self.get('/api/lists/1/members.json', auth=False, headers=k)
        self.assertTrue(mem and all('host' in x and 'host' in x['host'] and 'id' in x for x in mem))
        self.assertEqual(self.get('/api/lists/5/members.json', auth=False, headers=k), (200, []))
        self.assertEqual(self.get('/api/lists/77/members.json', auth=False, headers=k)[0], 404)

    def test_eti(self):
        k = {'Authorization': 'mock-eti-key'}
        self.assertEqual(self.get('/v1/domains/bad.example/reputation', auth=False)[0], 401)
        self.assertEqual(self.get('/v1/domains/bad.example/reputation', auth='nope')[0], 403)
        for res in ('reputation', 'urls', 'samples', 'ips', 'events', 'nameservers', 'geoloc'):
            st, d = self.get('/v1/domains/bad.example/' + res, auth=False, headers=k)
            self.assertEqual((st, d['success']), (200, True), res)
            self.assertIsInstance(d['response'], list)
        st, d = self.get('/v1/domains/bad.example/whois', auth=False, headers=k)
        self.assertEqual(d['response']['domain'], 'bad.example')
        self.assertEqual(self.get('/v1/domains/clean.example/reputation', auth=False, headers=k)[1],
                         {'success': True, 'response': []})
        st, d = self.get('/v1/domains/bad.example/bogus', auth=False, headers=k)
        self.assertEqual((st, d['success']), (404, False))
        self.assertEqual(self.get('/v1/ips/203.0.113.5/events', auth=False, headers=k)[0], 200)
        self.assertEqual(self.get('/v1/repcategories', auth=False, headers=k)[0], 200)
        self.m.fault(kind='429', path='/v1/')
        st, d = self.get('/v1/repcategories', auth=False, headers=k)
        self.assertEqual((st, d), (429, {'success': False, 'message': 'Rate limit exceeded', 'response': {}}))

    def test_essentials(self):
        h = {'X-User': 'admin@corp.example', 'X-Password': 'mock-ess-password'}
        st, d = self.get('/api/v1/orgs/corp.example/users', auth=False, headers=h)
        self.assertEqual(st, 200)
        self.assertEqual(len(d['users']), 57)
        self.assertEqual(len({u['primary_email'] for u in d['users']}), 57)
        st, d = self.get('/api/v1/orgs/corp.example/domains', auth=False, headers=h)
        self.assertEqual((st, d['domains'][0]['name']), (200, 'corp.example'))
        self.assertEqual(self.get('/api/v1/orgs/empty.example/users', auth=False, headers=h)[1], {'users': []})
        self.assertEqual(self.get('/api/v1/orgs/none.example/users', auth=False, headers=h)[0], 404)
        self.assertEqual(self.get('/api/v1/orgs/corp.example/users', auth=False,
                                  headers={'X-User': 'admin@corp.example'})[0], 401)

    def test_casb(self):
        st, tok = self.get('/api/v1/token', method='POST', auth=False,
                           body={'api_key': 'mock-casb-key', 'api_secret': 'mock-casb-secret'})
        self.assertEqual((st, tok['token_type']), (200, 'Bearer'))
        self.assertEqual(self.get('/api/v1/token', method='POST', auth=False,
                                  body={'api_key': 'x', 'api_secret': 'y'})[0], 401)
        bearer = 'Bearer ' + tok['access_token']
        self.assertEqual(self.get('/casb/v2/alerts', auth=False)[0], 401)
        self.assertEqual(self.get('/api/v1/alerts', auth=bearer)[0], 404)        # path is configurable
        st, d = self.get('/casb/v2/alerts', {'limit': 5}, auth=bearer)
        self.assertEqual((st, len(d['alerts'])), (200, 5))
        ts = [a['timestamp'] for a in d['alerts']]
        self.assertEqual(ts, sorted(ts, reverse=True))
        st, d = self.get('/casb/v2/alerts', {'limit': 1000, 'status': 'open'}, auth=bearer)
        self.assertTrue(all(a['status'] == 'open' for a in d['alerts']))
        self.assertEqual(self.get('/casb/v2/alerts', {'limit': 'x'}, auth=bearer)[0], 400)


    def test_trap_members_paging_and_expected(self):
        k = {'Authorization': 'mock-trap-key'}
        whole = self.get('/api/lists/3/members.json', auth=False, headers=k)[1]
        self.assertEqual(self.m.ctl('expected', {'path': '/api/lists/3/members.json'})['members'], whole)
        got, page = [], 1
        while True:
            st, d = self.get('/api/lists/3/members.json', {'page': page, 'size': 6}, auth=False, headers=k)
            self.assertEqual(st, 200)
            got += d
            if len(d) < 6:
                break
            page += 1
        self.assertEqual(got, whole)
        self.assertEqual(self.get('/api/lists/3/members.json', {'page': 2}, auth=False, headers=k)[0], 400)

    def test_people_expected(self):
        exp = self.m.ctl('expected', {'path': '/v2/people/top-clickers', 'window': '90'})['users']
        self.assertEqual(len(exp), 203)
        got = []
        for page in (1, 2, 3):
            got += self.get('/v2/people/top-clickers', {'window': 90, 'size': 100, 'page': page})[1]['users']
        self.assertEqual(got, exp)
        self.assertEqual(self.m.req('/__mock/expected', {'path': '/v2/people/vap', 'window': 7}, auth=False)[0], 400)

    def test_siem_syslog_expected_lines(self):
        a, b = '2024-05-02T10:00:00Z', '2024-05-02T10:20:00Z'
        st, h, body = self.m.req('/v2/siem/issues', {'interval': a + '/' + b, 'format': 'syslog'})
        self.assertEqual(st, 200)
        lines = self.m.ctl('expected', {'path': '/v2/siem/issues', 'start': a, 'end': b,
                                        'format': 'syslog'})['lines']
        self.assertGreater(len(lines), 0)
        self.assertEqual(body.decode('utf-8'), ''.join(l + '\n' for l in lines))

    def test_generic_api(self):
        k = {'X-Api-Key': 'mock-generic-key'}
        exp = self.m.ctl('expected', {'path': '/generic/v1/items'})['items']
        self.assertEqual(len(exp), 237)
        self.assertEqual([x['seq'] for x in exp], list(range(1, 238)))
        self.assertEqual(self.get('/generic/v1/items', auth=False)[0], 401)
        got, off = [], 0
        while True:
            st, d = self.get('/generic/v1/items', {'offset': off, 'limit': 100}, auth=False, headers=k)
            self.assertEqual((st, d['total']), (200, 237))
            got += d['data']
            off += len(d['data'])
            if len(d['data']) < 100:
                break
        self.assertEqual(got, exp)
        self.assertEqual(self.get('/generic/v1/items', {'limit': 101}, auth=False, headers=k)[0], 400)
        got, params = [], {'limit': 60}
        while True:
            st, d = self.get('/generic/v1/cursor', params, auth=False, headers=k)
            got += d['items']
            if d['meta']['next_cursor'] is None:
                break
            params = {'limit': 60, 'cursor': d['meta']['next_cursor']}
        self.assertEqual(got, exp)
        self.assertEqual(self.get('/generic/v1/cursor', {'cursor': '!!'}, auth=False, headers=k)[0], 400)
        got, path = [], '/generic/v1/links?per_page=50'
        while path:
            st, h, b = self.m.req(path, auth=False, headers=k)
            d = json.loads(b)
            got += d['results']
            path = d['links']['next']
        self.assertEqual(got, exp)
        st, d = self.get('/generic/v1/links', {'links': 'absolute'}, auth=False, headers=k)
        self.assertTrue(d['links']['next'].startswith('http://127.0.0.1:%d/generic/v1/links?' % self.m.port))
        st, d = self.get('/generic/v1/links', {'links': 'foreign'}, auth=False, headers=k)
        self.assertTrue(d['links']['next'].startswith('http://other.example/'))
        st, d = self.get('/generic/v1/search', method='POST', body={'tag': 'a'}, auth=False, headers=k)
        self.assertEqual(d['hits'], [x for x in exp if 'a' in x['tags']])
        self.assertEqual(self.get('/generic/v1/search', method='POST', body={'x': 1}, auth=False,
                                  headers=k)[0], 400)


class ProcessTests(unittest.TestCase):
    def test_determinism_across_restarts(self):
        p = {'format': 'json', 'interval': '2024-05-02T10:00:00Z/PT1H',
             'threatStatus': ['active', 'cleared', 'falsePositive']}
        bodies = []
        for seed in ('11', '11', '12'):
            m = Mock('--seed', seed, '--now', NOW)
            try:
                bodies.append(m.req('/v2/siem/all', p)[2])
                sl = m.req('/v2/siem/all', {'interval': p['interval']})[2]
                bodies.append(sl)
            finally:
                self.assertEqual(m.stop(signal.SIGINT if seed == '12' else signal.SIGTERM), 0)
        self.assertEqual(bodies[0], bodies[2])
        self.assertEqual(bodies[1], bodies[3])
        self.assertNotEqual(bodies[0], bodies[4])

    def test_real_clock(self):
        m = Mock('--rate', '5')
        try:
            env = m.siem(sinceSeconds='120')
            qet = env['queryEndTime']
            now = time.time()
            end = time.mktime(time.strptime(qet, '%Y-%m-%dT%H:%M:%SZ')) - time.timezone
            self.assertLess(abs(end - now), 31 + 5)
        finally:
            m.stop()

    def test_now_advances(self):
        m = Mock('--now', '2024-05-02T12:00:00Z', '--now-advances', '--exit-with-parent')
        try:
            time.sleep(1.1)
            now = m.ctl('config')['now']
            self.assertTrue('2024-05-02T12:00:01' <= now < '2024-05-02T12:00:10', now)
        finally:
            self.assertEqual(m.stop(), 0)

    def test_refuses_non_loopback(self):
        d = tempfile.mkdtemp()
        try:
            r = subprocess.run([sys.executable, MOCK, '--host', '0.0.0.0', '--port', '0',
                                '--port-file', os.path.join(d, 'p')], capture_output=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)
            self.assertFalse(os.path.exists(os.path.join(d, 'p')))
        finally:
            shutil.rmtree(d)

    @unittest.skipUnless(shutil.which('openssl'), 'openssl not available')
    def test_tls(self):
        d = tempfile.mkdtemp()
        try:
            cert, key = os.path.join(d, 'c.pem'), os.path.join(d, 'k.pem')
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                            '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1'],
                           check=True, capture_output=True, timeout=30)
            m = Mock('--tls-cert', cert, '--tls-key', key, '--now', NOW)
            try:
                ctx = ssl.create_default_context(cafile=cert)
                ctx.check_hostname = False
                c = http.client.HTTPSConnection('127.0.0.1', m.port, context=ctx, timeout=10)
                c.request('GET', '/v2/siem/all?format=json&sinceSeconds=120', headers={'Authorization': AUTH})
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                self.assertIn('queryEndTime', json.loads(r.read()))
                c.close()
                # a plain-HTTP client must not hang the server
                s = socket.create_connection(('127.0.0.1', m.port), timeout=5)
                s.sendall(b'GET / HTTP/1.1\r\n\r\n')
                s.close()
                self.assertEqual(m.proc.poll(), None)
            finally:
                self.assertEqual(m.stop(), 0)
        finally:
            shutil.rmtree(d)


if __name__ == '__main__':
    unittest.main(verbosity=2)
