#!/usr/bin/env python3
"""bench.py: ppflow's benchmark (run it through tests/bench/run.sh).

Generates a /v2/siem/all-like response (gen_siem.py), then measures, for the
same input in one run, the median of N runs of wall time, throughput and peak
resident memory of:
  1. extracting $.messagesDelivered[*] from a file to NDJSON: `ppflow run`
     (source.file), `jq -c '.messagesDelivered[]'`, `cat`, and the two
     extraction paths alone (bench_extract: streaming pf_sx, buffered
     pf_extract_records);
  2. fetching it from a loopback HTTP server to NDJSON: `ppflow run`
     (source.base_url) and `curl -s URL > file`;
  3. loading the records of a smaller input (--sink-size) into PostgreSQL
     (a throwaway cluster, tests/pg/pgcluster.py, with PostgreSQL's durable
    defaults: fsync and synchronous_commit on): `ppflow run` with the
     postgres sink, `psql \\copy` of the same rows, and one autocommit INSERT
     per row for the first --insert-rows rows;
  4. producing them to librdkafka's mock cluster (tests/kafka/pf_kafka_mock):
     `ppflow run` with the kafka sink and `kcat -P` of the same key<TAB>value
     lines (librdkafka's defaults, and the sink's settings);
  5. the JSONPath evaluator on the compliance suite's valid queries
     (bench_jsonpath).
Every command must succeed and the record counts must agree, otherwise the
benchmark fails (exit 1); rows 3 and 4 print "skipped: WHY" when PostgreSQL,
kcat, the mock cluster or a sink plugin is missing. The figures themselves are never checked.
Wall time and peak RSS come from bench_rusage (clock_gettime, wait4's ru_maxrss).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUSAGE = None  # build/tests/bench/bench_rusage, set in main()


class Fail(Exception):
    pass


def measure(argv, out_path=None, log=None, env=None):
    """Runs ARGV once under bench_rusage; returns (seconds, peak RSS in MB).
    Raises Fail on a non-zero exit."""
    report = os.path.join(os.path.dirname(log), '.rusage')
    with open(out_path or os.devnull, 'wb') as out, open(log, 'ab') as err:
        p = subprocess.run([RUSAGE, report] + argv, stdout=out, stderr=err, env=env)
    if p.returncode != 0:
        raise Fail('bench_rusage failed for %s' % ' '.join(argv))
    with open(report) as f:
        secs, kib, rc = f.read().split()
    if int(rc) != 0:
        with open(log, 'rb') as f:
            tail = f.read()[-2000:].decode('utf-8', 'replace')
        raise Fail('%s exited with %s\n%s' % (' '.join(argv), rc, tail))
    return float(secs), int(kib) / 1024.0


def count_lines(path):
    n = 0
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += b.count(b'\n')


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown CPU'


class Row:
    def __init__(self, row, what):
        self.row, self.what, self.tools = row, what, []

    def add(self, tool, times=None, rss=None, mb=None, note='', recs=None):
        t = statistics.median(times) if times else None
        r = statistics.median(rss) if rss else None
        self.tools.append({'tool': tool, 'secs': t, 'rss': r,
                           'mbps': (mb / t) if (mb and t) else None,
                           'rps': (recs / t) if (recs and t) else None, 'note': note})

    def rate(self, tool):
        for x in self.tools:
            if x['tool'] == tool:
                return x['rps']
        return None

    def secs(self, tool):
        for x in self.tools:
            if x['tool'] == tool:
                return x['secs']
        return None


def fmt(v, spec):
    return format(v, spec) if v is not None else '-'


def print_table(rows, header):
    print(header)
    w_what = max(len(r.what) for r in rows)
    w_tool = max(len(t['tool']) for r in rows for t in r.tools)
    print('%-3s  %-*s  %-*s  %9s  %9s  %9s  %11s  %s' % (
        'row', w_what, 'measurement', w_tool, 'tool', 'median s', 'records/s', 'MB/s',
        'peak RSS MB', 'note'))
    for r in rows:
        first = True
        for t in r.tools:
            print('%-3s  %-*s  %-*s  %9s  %9s  %9s  %11s  %s' % (
                r.row if first else '', w_what, r.what if first else '', w_tool, t['tool'],
                fmt(t['secs'], '.3f'), fmt(t['rps'], '.0f'), fmt(t['mbps'], '.1f'),
                fmt(t['rss'], '.1f'), t['note']))
            first = False


def ratio_lines(rows):
    out = []
    r1 = next((r for r in rows if r.row == '1'), None)
    if r1:
        jq, cat = r1.secs('jq -c'), r1.secs('cat')
        for tool in ('ppflow run', 'pf_sx alone (streaming)', 'pf_extract_records alone'):
            t = r1.secs(tool)
            if t and jq and cat:
                rss = next(x['rss'] for x in r1.tools if x['tool'] == tool)
                out.append('row 1, %s: %.1fx the speed of jq (target >= 20x), %.1fx the time of '
                           'cat (target <= 5x), peak RSS %.1f MB (target < 32 MB)' % (
                               tool, jq / t, t / cat, rss))
    r2 = next((r for r in rows if r.row == '2'), None)
    if r2:
        t, c = r2.secs('ppflow run'), r2.secs('curl -s URL > file')
        if t and c:
            out.append('row 2, ppflow run: %.1fx the time of curl (target <= 2x)' % (t / c))
    r3 = next((r for r in rows if r.row == '3'), None)
    if r3:
        p, c, i = r3.rate('ppflow run'), r3.rate('psql \\copy'), r3.rate('psql INSERT')
        if p and c and i:
            out.append('row 3, ppflow run: %.0f%% of psql COPY\'s records/s (target >= 70%%), '
                       '%.1fx row-by-row INSERT\'s (target >= 10x)' % (100 * p / c, p / i))
    r4 = next((r for r in rows if r.row == '4'), None)
    if r4:
        p, k, m = r4.rate('ppflow run'), r4.rate('kcat -P'), r4.rate('kcat -P, same settings')
        if p and k:
            out.append('row 4, ppflow run: %.0f%% of kcat -P\'s records/s (target >= 80%%)%s' % (
                100 * p / k, '; %.0f%% of kcat with the sink\'s producer settings' % (
                    100 * p / m) if m else ''))
    return out


def write_flow(path, name, source_lines, out_dir, state, sink_lines=None):
    """A flow on bench-siem.yaml; its sink is NDJSON into OUT_DIR unless SINK_LINES
    (the lines under `sink:`) are given."""
    if sink_lines is None:
        sink_lines = ['type: ndjson', 'path: %s/{stream}.ndjson' % out_dir, 'fsync: false']
    with open(path, 'w') as f:
        f.write('# %s: written by tests/bench/bench.py\n' % name)
        f.write('name: %s\nsource:\n  template: %s\n' % (
            name, os.path.join(HERE, 'bench-siem.yaml')))
        for line in source_lines:
            f.write('  %s\n' % line)
        f.write('  http:\n    max_body: 1GiB\n')
        f.write('sink:\n')
        for line in sink_lines:
            f.write('  %s\n' % line)
        f.write('state:\n  path: %s\n' % state)


def start_server(directory, log):
    """A loopback HTTP server for DIRECTORY in its own process; returns (proc, port)."""
    port_file = os.path.join(directory, '.port')
    if os.path.exists(port_file):
        os.unlink(port_file)
    code = ('import functools, http.server, os, sys\n'
            'h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n'
            'http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None\n'
            's = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)\n'
            'open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))\n'
            'os.rename(sys.argv[2] + ".tmp", sys.argv[2])\n'
            's.serve_forever()\n')
    p = subprocess.Popen([sys.executable, '-c', code, directory, port_file],
                         stdout=subprocess.DEVNULL, stderr=open(log, 'ab'))
    for _ in range(200):
        if os.path.exists(port_file):
            with open(port_file) as f:
                return p, int(f.read())
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    raise Fail('the loopback HTTP server did not start (see %s)' % log)


def prepare_sink_input(a, work, log, ppflow, env, data, ppflow_out):
    """The input of rows 3 and 4 (--sink-size MB, the main input when that is not
    smaller) and the files the peer tools load: the NDJSON ppflow writes for it,
    turned into COPY text (key, record, flow), INSERT statements and key<TAB>value
    lines. Returns a dict describing them."""
    size = min(a.sink_size, a.size)
    db = {'size': size}
    if size >= a.size and ppflow_out:
        db['data'], ndjson = data, ppflow_out
    else:
        db['data'] = data if size >= a.size else os.path.join(work, 'siem-sink.json')
        stamp = db['data'] + '.params'
        want = json.dumps({'size': size, 'seed': a.seed})
        if db['data'] != data and not (os.path.exists(db['data']) and os.path.exists(stamp)
                                       and open(stamp).read() == want):
            print('generating %.1f MB of SIEM data for rows 3-4...' % size, file=sys.stderr)
            subprocess.run([sys.executable, os.path.join(HERE, 'gen_siem.py'), str(size),
                            str(a.seed), '--out', db['data']], check=True)
            with open(stamp, 'w') as f:
                f.write(want)
        out_dir = os.path.join(work, 'ppflow-sink-input')
        state = os.path.join(work, 'ppflow-sink-input-state.json')
        flow = os.path.join(work, 'bench-sink-input.yaml')
        shutil.rmtree(out_dir, ignore_errors=True)
        if os.path.exists(state):
            os.unlink(state)
        write_flow(flow, 'bench-sink-input', ['file: %s' % db['data']], out_dir, state)
        measure([ppflow, 'run', flow], log=log, env=env)
        ndjson = os.path.join(out_dir, 'messages_delivered.ndjson')
    db['mb'] = os.path.getsize(db['data']) / 1e6
    db['copy'] = os.path.join(work, 'sink-rows.copy')
    db['insert'] = os.path.join(work, 'sink-rows-insert.sql')
    db['kv'] = os.path.join(work, 'sink-rows.kv')
    n = 0
    with open(ndjson, 'rb') as src, open(db['copy'], 'wb') as cp, \
            open(db['insert'], 'wb') as ins, open(db['kv'], 'wb') as kv:
        for line in src:
            rec = line.rstrip(b'\n')
            key = json.loads(rec)['GUID'].encode('utf-8')
            # COPY text format: backslash is the escape character; compact JSON has
            # no raw tab or line break, and the GUIDs none at all.
            cp.write(b'%s\t%s\tbench-pg\n' % (key, rec.replace(b'\\', b'\\\\')))
            if n < a.insert_rows:
                ins.write(b"INSERT INTO bench_insert (key, record, flow) VALUES "
                          b"('%s', '%s', 'bench-pg');\n" % (
                              key.replace(b"'", b"''"), rec.replace(b"'", b"''")))
            kv.write(b'%s\t%s\n' % (key, rec))
            n += 1
    db['n'] = n
    db['n_insert'] = min(n, a.insert_rows)
    return db


PG_TABLE = ('(key text PRIMARY KEY, record jsonb NOT NULL, '
            'ingested_at timestamptz NOT NULL DEFAULT now(), flow text NOT NULL)')


def row_postgres(a, work, log, ppflow, env, db):
    """Row 3: the PostgreSQL sink against psql's \\copy and row-by-row INSERT of the
    same rows, into a throwaway cluster (tests/pg/pgcluster.py)."""
    r = Row('3', 'PostgreSQL sink (%.1f MB input)' % db['mb'])
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'pg'))
    import pgcluster
    plugin = os.path.join(env['PPFLOW_SINK_PATH'], 'ppflow_sink_postgres.so')
    if not os.path.exists(plugin):
        r.add('ppflow / psql', note='skipped: %s not built (needs libpq-dev)' % plugin)
        return r
    try:
        # PostgreSQL's defaults (fsync, synchronous_commit on), as a real server
        # has them: each tool waits for the disk at each of its commits.
        pg = pgcluster.Cluster(durable=True)
    except pgcluster.Unavailable as e:
        r.add('ppflow / psql', note='skipped: %s' % e)
        return r
    psql = pg.bin('psql') if os.access(pg.bin('psql'), os.X_OK) else shutil.which('psql')
    if not os.access(pg.bin('initdb'), os.X_OK) or not psql:
        r.add('ppflow / psql', note='skipped: PostgreSQL (initdb, psql) not found in %s'
              % pg.bindir)
        return r
    print('row 3: starting a PostgreSQL cluster...', file=sys.stderr)
    with pg:
        psql = [psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', pg.conninfo]
        env3 = dict(env, PG_CONNINFO=pg.conninfo)
        state = os.path.join(work, 'ppflow-pg-state.json')
        flow = os.path.join(work, 'bench-pg.yaml')
        write_flow(flow, 'bench-pg', ['file: %s' % db['data']], None, state,
                   ['type: postgres', 'conninfo: ${PG_CONNINFO}', 'create: true'])
        copy_cmd = "\\copy bench_copy (key, record, flow) FROM '%s'" % db['copy']
        t = {k: ([], []) for k in ('pp', 'copy', 'ins')}
        for i in range(a.runs):
            print('row 3, run %d/%d...' % (i + 1, a.runs), file=sys.stderr)
            pg.sql('DROP TABLE IF EXISTS ppflow_messages_delivered, ppflow_state, bench_copy, '
                   'bench_insert; CREATE TABLE bench_copy %s; CREATE TABLE bench_insert %s; '
                   'CHECKPOINT' % (PG_TABLE, PG_TABLE))
            if os.path.exists(state):
                os.unlink(state)
            for key, argv, e in (('pp', [ppflow, 'run', flow], env3),
                                 ('copy', psql + ['-c', copy_cmd], None),
                                 ('ins', psql + ['-f', db['insert']], None)):
                s, m = measure(argv, log=log, env=e)
                t[key][0].append(s)
                t[key][1].append(m)
            got = [int(pg.sql('SELECT count(*) FROM %s' % tab)) for tab in
                   ('ppflow_messages_delivered', 'bench_copy', 'bench_insert')]
            if got != [db['n'], db['n'], db['n_insert']]:
                raise Fail('row 3 loaded %s rows (ppflow, COPY, INSERT), expected %s' % (
                    got, [db['n'], db['n'], db['n_insert']]))
            same = pg.sql('SELECT count(*) FROM ppflow_messages_delivered p JOIN bench_copy c '
                          'USING (key) WHERE p.record = c.record AND p.flow = c.flow')
            if int(same) != db['n']:
                raise Fail('row 3: only %s of %d ppflow rows equal the COPY rows' % (
                    same, db['n']))
    frac = db['n_insert'] / db['n'] if db['n'] else 1.0
    r.add('ppflow run', *t['pp'], mb=db['mb'], recs=db['n'],
          note='%d records, sink postgres (create: true), one transaction' % db['n'])
    r.add('psql \\copy', *t['copy'], mb=db['mb'], recs=db['n'],
          note='the same rows (key, record, flow), COPY text into an equivalent table')
    r.add('psql INSERT', *t['ins'], mb=db['mb'] * frac, recs=db['n_insert'],
          note='first %d rows, one autocommit INSERT each (psql -f); all %d would take '
               'about %.1f s' % (db['n_insert'], db['n'],
                                 statistics.median(t['ins'][0]) / frac))
    return r


def row_kafka(a, work, log, ppflow, env, db):
    """Row 4: the Kafka sink against kcat -P of the same key<TAB>value lines, into
    librdkafka's mock cluster (tests/kafka/pf_kafka_mock, 3 brokers)."""
    r = Row('4', 'Kafka sink, mock cluster (%.1f MB input)' % db['mb'])
    mock = os.path.join(os.path.dirname(RUSAGE), '..', 'kafka', 'pf_kafka_mock')
    plugin = os.path.join(env['PPFLOW_SINK_PATH'], 'ppflow_sink_kafka.so')
    kcat = shutil.which('kcat')
    for why, missing in (('%s not built (needs librdkafka-dev)' % plugin,
                          not os.path.exists(plugin)),
                         ('%s not built' % mock, not os.access(mock, os.X_OK)),
                         ('kcat not installed', not kcat)):
        if missing:
            r.add('ppflow / kcat -P', note='skipped: ' + why)
            return r
    print('row 4: starting the Kafka mock cluster...', file=sys.stderr)
    proc = subprocess.Popen([mock, os.path.join(work, 'kafka.bootstrap')],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(log, 'ab'), text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith('ready '):
            raise Fail('the Kafka mock cluster did not start: %r' % line)
        brokers = line.split()[1]
        env4 = dict(env, KAFKA_BROKERS=brokers)
        state = os.path.join(work, 'ppflow-kafka-state.json')
        flow = os.path.join(work, 'bench-kafka.yaml')
        same = ['-X', 'compression.type=lz4', '-X', 'linger.ms=20', '-X', 'batch.size=1000000',
                '-X', 'enable.idempotence=true']
        t = {k: ([], []) for k in ('pp', 'kcat', 'same')}
        topics = {}
        for i in range(a.runs):
            print('row 4, run %d/%d...' % (i + 1, a.runs), file=sys.stderr)
            topics = {k: 'bench-%s-%d' % (k, i) for k in t}
            write_flow(flow, 'bench-kafka', ['file: %s' % db['data']], None, state,
                       ['type: kafka', 'brokers: ${KAFKA_BROKERS}',
                        'topic: %s' % topics['pp']])
            if os.path.exists(state):
                os.unlink(state)
            for key, argv, e in (
                    ('pp', [ppflow, 'run', flow], env4),
                    ('kcat', [kcat, '-P', '-b', brokers, '-t', topics['kcat'], '-K', '\\t',
                              '-l', db['kv']], None),
                    ('same', [kcat, '-P', '-b', brokers, '-t', topics['same'], '-K', '\\t']
                     + same + ['-l', db['kv']], None)):
                s, m = measure(argv, log=log, env=e)
                t[key][0].append(s)
                t[key][1].append(m)
        for key, topic in topics.items():
            # The mock keeps only the newest few MB of each partition, so the check
            # reads the offset of each partition's last message (-o -1), not every one.
            p = subprocess.run([kcat, '-C', '-b', brokers, '-t', topic, '-o', '-1', '-e', '-q',
                                '-f', '%o\\n'], capture_output=True, timeout=120)
            n = sum(int(x) + 1 for x in p.stdout.split())
            if p.returncode != 0 or n != db['n']:
                raise Fail('row 4: topic %s holds %d messages (kcat -C exit %d), expected %d'
                           % (topic, n, p.returncode, db['n']))
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    r.add('ppflow run', *t['pp'], mb=db['mb'], recs=db['n'],
          note='%d records, sink kafka (defaults: lz4, acks all, idempotent, linger 20ms)'
               % db['n'])
    r.add('kcat -P', *t['kcat'], mb=db['mb'], recs=db['n'],
          note="kcat -P -K'\\t' -l FILE (key<TAB>value lines), librdkafka defaults")
    r.add('kcat -P, same settings', *t['same'], mb=db['mb'], recs=db['n'],
          note='plus -X compression.type=lz4 linger.ms=20 batch.size=1000000 '
               'enable.idempotence=true')
    return r


def main():
    ap = argparse.ArgumentParser(description='ppflow benchmark (see docs/performance.md)')
    ap.add_argument('--size', type=float, default=120.0, help='input size in MB (default 120)')
    ap.add_argument('--runs', type=int, default=5, help='runs per measurement (default 5)')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=2000, help='JSONPath rounds (row 5)')
    ap.add_argument('--sink-size', type=float, default=30.0,
                    help='input size in MB of rows 3 and 4 (default 30)')
    ap.add_argument('--insert-rows', type=int, default=2000,
                    help='rows loaded by row-by-row INSERT in row 3 (default 2000)')
    ap.add_argument('--build', help='build directory (default $PPFLOW_BUILD_DIR or ./build)')
    ap.add_argument('--work', help='scratch directory (default BUILD/bench-work)')
    ap.add_argument('--tiny', action='store_true',
                    help='a quick check that everything runs (0.3 MB, 1 run)')
    ap.add_argument('--rows', default='1,2,3,4,5',
                    help='comma-separated rows to measure (default all: 1,2,3,4,5)')
    a = ap.parse_args()
    try:
        a.rows = {int(x) for x in a.rows.split(',') if x.strip()}
    except ValueError:
        ap.error('--rows takes row numbers separated by commas, e.g. 3 or 1,3')
    if not a.rows or not a.rows <= {1, 2, 3, 4, 5}:
        ap.error('--rows takes row numbers from 1 to 5')
    if a.tiny:
        a.size, a.runs, a.rounds = 0.3, 1, 20

    build = os.path.abspath(a.build or os.environ.get('PPFLOW_BUILD_DIR') or
                            os.path.join(ROOT, 'build'))
    ppflow = os.environ.get('PPFLOW_BIN') or os.path.join(build, 'src', 'ppflow')
    bench_extract = os.path.join(build, 'tests', 'bench', 'bench_extract')
    bench_jsonpath = os.path.join(build, 'tests', 'bench', 'bench_jsonpath')
    global RUSAGE
    a.build_dir = build
    RUSAGE = os.path.join(build, 'tests', 'bench', 'bench_rusage')
    for prog in (ppflow, bench_extract, bench_jsonpath, RUSAGE):
        if not os.access(prog, os.X_OK):
            print('missing %s: build first (./tests/run.sh, or cmake -S . -B build && '
                  'cmake --build build)' % prog, file=sys.stderr)
            return 1
    missing = [t for t in ('jq', 'curl', 'cat') if not shutil.which(t)]
    if missing:
        print('missing tools: %s (see tests/deps.sh)' % ' '.join(missing), file=sys.stderr)
        return 77 if a.tiny else 1

    tmp = None
    if a.work:
        work = os.path.abspath(a.work)
    elif a.tiny:
        work = tmp = tempfile.mkdtemp(prefix='ppflow-bench-')
    else:
        work = os.path.join(build, 'bench-work')
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, 'bench.log')
    try:
        return run(a, work, log, ppflow, bench_extract, bench_jsonpath)
    except Fail as e:
        print('benchmark failed: %s' % e, file=sys.stderr)
        return 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run(a, work, log, ppflow, bench_extract, bench_jsonpath):
    serve = os.path.join(work, 'serve')
    os.makedirs(serve, exist_ok=True)
    data = os.path.join(serve, 'siem.json')
    stamp = os.path.join(work, 'siem.json.params')
    want = json.dumps({'size': a.size, 'seed': a.seed})
    if not (os.path.exists(data) and os.path.exists(stamp) and open(stamp).read() == want):
        print('generating %.1f MB of SIEM data (seed %d)...' % (a.size, a.seed), file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(HERE, 'gen_siem.py'), str(a.size),
                        str(a.seed), '--out', data], check=True)
        with open(stamp, 'w') as f:
            f.write(want)
    mb = os.path.getsize(data) / 1e6
    env = dict(os.environ)
    env.pop('PPFLOW_TEMPLATE_PATH', None)
    env.setdefault('PPFLOW_SINK_PATH', os.path.join(a.build_dir, 'sinks'))
    rows = []

    # ---- row 1: file -> NDJSON ---------------------------------------------
    ppflow_out = None
    if 1 in a.rows:
        ppflow_out = row_file(a, work, log, ppflow, env, data, mb, bench_extract, rows)
    if 2 in a.rows:
        row_http(a, work, log, ppflow, env, serve, data, mb, rows)

    # ---- rows 3 and 4: sinks, on a smaller input ------------------------------
    db = None
    if a.rows & {3, 4}:
        db = prepare_sink_input(a, work, log, ppflow, env, data, ppflow_out)
    if 3 in a.rows:
        rows.append(row_postgres(a, work, log, ppflow, env, db))
    if 4 in a.rows:
        rows.append(row_kafka(a, work, log, ppflow, env, db))
    if 5 in a.rows:
        rows.append(row_jsonpath(a, work, log, bench_jsonpath))

    header = ('ppflow benchmark: input %.1f MB (gen_siem.py %g %d), rows 3-4 %s, '
              'median of %d run(s); %d CPUs, %s' % (
                  mb, a.size, a.seed, '%.1f MB (gen_siem.py %g %d)' % (
                      db['mb'], db['size'], a.seed) if db else 'not run',
                  a.runs, os.cpu_count() or 0, cpu_model()))
    print_table(rows, header)
    for line in ratio_lines(rows):
        print(line)
    return 0


def row_file(a, work, log, ppflow, env, data, mb, bench_extract, rows):
    """Row 1; returns the NDJSON file ppflow wrote."""
    r1 = Row('1', 'file -> NDJSON, $.messagesDelivered[*]')
    out_dir = os.path.join(work, 'ppflow-file')
    state = os.path.join(work, 'ppflow-file-state.json')
    flow = os.path.join(work, 'bench-file.yaml')
    write_flow(flow, 'bench-file', ['file: %s' % data], out_dir, state)
    ppflow_out = os.path.join(out_dir, 'messages_delivered.ndjson')
    jq_out = os.path.join(work, 'jq.ndjson')
    cat_out = os.path.join(work, 'cat.json')
    sx_out = os.path.join(work, 'sx.ndjson')
    bx_out = os.path.join(work, 'buffered.ndjson')
    tmpl = os.path.join(HERE, 'bench-siem.yaml')
    res = {k: ([], []) for k in ('ppflow', 'jq', 'cat', 'sx', 'bx')}

    def rec(key, m):
        res[key][0].append(m[0])
        res[key][1].append(m[1])

    for i in range(a.runs):
        print('row 1, run %d/%d...' % (i + 1, a.runs), file=sys.stderr)
        shutil.rmtree(out_dir, ignore_errors=True)
        if os.path.exists(state):
            os.unlink(state)
        rec('ppflow', measure([ppflow, 'run', flow], log=log, env=env))
        rec('jq', measure(['jq', '-c', '.messagesDelivered[]', data], out_path=jq_out, log=log))
        rec('cat', measure(['cat', data], out_path=cat_out, log=log))
        rec('sx', measure([bench_extract, 'stream', tmpl, data, sx_out], log=log))
        rec('bx', measure([bench_extract, 'buffered', tmpl, data, bx_out], log=log))
    n_jq = count_lines(jq_out)
    counts = {'ppflow run': count_lines(ppflow_out), 'pf_sx alone (streaming)': count_lines(sx_out),
              'pf_extract_records alone': count_lines(bx_out)}
    for tool, n in counts.items():
        if n != n_jq:
            raise Fail('%s wrote %d records, jq %d' % (tool, n, n_jq))
    if os.path.getsize(cat_out) != os.path.getsize(data):
        raise Fail('cat copied %d of %d bytes' % (os.path.getsize(cat_out), os.path.getsize(data)))
    same = open(sx_out, 'rb').read() == open(ppflow_out, 'rb').read()
    r1.add('ppflow run', *res['ppflow'], mb=mb, recs=n_jq, note='%d records' % n_jq)
    r1.add('jq -c', *res['jq'], mb=mb, recs=n_jq, note="jq -c '.messagesDelivered[]' FILE > out")
    r1.add('cat', *res['cat'], mb=mb, note='cat FILE > out (the copy limit)')
    r1.add('pf_sx alone (streaming)', *res['sx'], mb=mb, recs=n_jq,
           note='bench_extract stream (64 KiB chunks)%s' % (
               '; output identical to ppflow run' if same else ''))
    r1.add('pf_extract_records alone', *res['bx'], mb=mb, recs=n_jq,
           note='bench_extract buffered (json-c)')
    rows.append(r1)
    return ppflow_out


def row_http(a, work, log, ppflow, env, serve, data, mb, rows):
    """Row 2."""
    r2 = Row('2', 'loopback HTTP -> NDJSON')
    server, port = start_server(serve, log)
    try:
        url = 'http://127.0.0.1:%d' % port
        out_dir2 = os.path.join(work, 'ppflow-http')
        state2 = os.path.join(work, 'ppflow-http-state.json')
        flow2 = os.path.join(work, 'bench-http.yaml')
        write_flow(flow2, 'bench-http', ['base_url: %s' % url], out_dir2, state2)
        curl_out = os.path.join(work, 'curl.json')
        t_pp, m_pp, t_curl, m_curl = [], [], [], []
        for i in range(a.runs):
            print('row 2, run %d/%d...' % (i + 1, a.runs), file=sys.stderr)
            shutil.rmtree(out_dir2, ignore_errors=True)
            if os.path.exists(state2):
                os.unlink(state2)
            s, m = measure([ppflow, 'run', flow2], log=log, env=env)
            t_pp.append(s)
            m_pp.append(m)
            s, m = measure(['curl', '-s', '-f', url + '/siem.json'], out_path=curl_out, log=log)
            t_curl.append(s)
            m_curl.append(m)
    finally:
        server.kill()
        server.wait()
    n_http = count_lines(os.path.join(out_dir2, 'messages_delivered.ndjson'))
    n_jq = count_lines(os.path.join(work, 'jq.ndjson')) if 1 in a.rows else n_http
    if n_http != n_jq:
        raise Fail('ppflow over HTTP wrote %d records, jq %d' % (n_http, n_jq))
    if os.path.getsize(curl_out) != os.path.getsize(data):
        raise Fail('curl fetched %d of %d bytes' % (os.path.getsize(curl_out),
                                                    os.path.getsize(data)))
    r2.add('ppflow run', t_pp, m_pp, mb=mb, recs=n_jq, note='source.base_url, one request')
    r2.add('curl -s URL > file', t_curl, m_curl, mb=mb,
           note='python ThreadingHTTPServer on 127.0.0.1')
    rows.append(r2)


def row_jsonpath(a, work, log, bench_jsonpath):
    """Row 5."""
    r5 = Row('5', 'JSONPath evaluator, CTS valid queries')
    cts = os.path.join(ROOT, 'tests', 'jsonpath', 'cts', 'cts.json')
    t5, m5, notes = [], [], []
    for i in range(a.runs):
        print('row 5, run %d/%d...' % (i + 1, a.runs), file=sys.stderr)
        out5 = os.path.join(work, 'jsonpath.txt')
        s, m = measure([bench_jsonpath, cts, str(a.rounds)], out_path=out5, log=log)
        line = open(out5).read().strip()
        fields = dict(kv.split('=', 1) for kv in line.split())
        t5.append(float(fields['seconds']))
        m5.append(m)
        notes.append(fields)
    f = notes[len(notes) // 2]
    evals = int(f['evaluations'])
    r5.add('bench_jsonpath', t5, m5,
           note='%s queries x %s rounds: %.0f evaluations/s (%.0f ns each)' % (
               f['queries'], f['rounds'], evals / statistics.median(t5),
               statistics.median(t5) * 1e9 / evals))
    return r5


if __name__ == '__main__':
    sys.exit(main())
