"""The portal in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, against a running `croupier serve` whose
instances run on the bed's SLURM. On failure, a screenshot of every page the test
visited is saved under the test's tmp_path/screenshots."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from portal_bed import zip_folder  # noqa: E402

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason='chromium and chromium-driver are not installed '
                                       '(tests/bed/install.sh installs them)')


@pytest.fixture(scope='session', autouse=True)
def _check_in_ci():
    if os.environ.get('CI', '').lower() in ('1', 'true', 'yes') and \
            not os.path.exists(CHROMEDRIVER):
        pytest.fail('chromium-driver is missing in CI', pytrace=False)


class Browser:
    """A headless Chromium session that remembers the pages it visited."""

    def __init__(self, portal) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                         '--window-size=1400,1100', '--disable-gpu'):
            options.add_argument(argument)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        # a page that waits for a free connection (streams of pages left behind kept
        # open) is a failure, not a slow test
        self.driver.set_page_load_timeout(15)
        self.portal = portal
        self.visited: list[str] = []

    def open(self, path: str) -> None:
        self.driver.get(self.portal.url + path)
        self.note()

    def note(self) -> None:
        if self.driver.current_url not in self.visited:
            self.visited.append(self.driver.current_url)

    def find(self, css: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list:
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def until(self, check: Callable[[], object], limit: float = 60.0, what: str = ''):
        """``check()``'s first true answer, polled (exceptions count as not yet)."""
        deadline = time.monotonic() + limit
        last = None
        while time.monotonic() < deadline:
            try:
                answer = check()
                if answer:
                    return answer
            except Exception as exc:         # the page is still changing
                last = exc
            time.sleep(0.25)
        raise AssertionError(f'not {what or "true"} after {limit}s ({last!r}) on '
                             f'{self.driver.current_url}')

    def job_states(self) -> dict:
        """The live job table: job node name (without the instance suffix) -> state."""
        states = {}
        for row in self.finds('#jobs tbody tr'):
            name = row.get_attribute('data-job').rsplit('_', 1)[0]
            states[name] = row.find_element('css selector', 'td.state').text
        return states

    def click_output(self, job_prefix: str, stream: str) -> None:
        """Click the stdout or stderr button of the job whose name starts with
        ``job_prefix``; found again on each try, as the live table redraws its rows."""
        def click() -> bool:
            row = next(r for r in self.finds('#jobs tbody tr')
                       if r.get_attribute('data-job').startswith(job_prefix))
            row.find_element('css selector', f'button.show-{stream}').click()
            return True
        self.until(click, 30, f'the {stream} button of {job_prefix}')

    def screenshots(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.driver.save_screenshot(os.path.join(folder, '00-last.png'))
        for number, url in enumerate(self.visited, 1):
            self.driver.get(url)
            time.sleep(0.5)
            slug = url.split('//', 1)[1].split('/', 1)[1].split('?')[0].replace('/', '_')
            self.driver.save_screenshot(os.path.join(folder, f'{number:02d}-{slug or "dashboard"}.png'))


@pytest.fixture
def browser(portal, request, tmp_path):
    session = Browser(portal)
    session.open(f'/?token={portal.token}')     # the cookie, as a user's first visit
    yield session
    report = getattr(request.node, 'report_call', None)
    try:
        if report is None or report.failed:
            session.screenshots(str(tmp_path / 'screenshots'))
    finally:
        session.driver.quit()


def test_upload_create_execute_and_read_output(browser, portal, bed_inputs, tmp_path):
    b = browser
    assert 'Dashboard' in b.driver.title and b.portal.token not in b.driver.current_url
    # upload an application
    package = tmp_path / 'slurm-app.zip'
    package.write_bytes(zip_folder('slurm-app'))
    b.open('/applications')
    b.find('#package').send_keys(str(package))
    b.find('#upload-button').click()
    b.until(lambda: '/applications/slurm-app' in b.driver.current_url, 30, 'uploaded')
    b.note()
    assert len(b.finds('svg.dag g.job')) == 3
    assert 'hpc_host' in b.find('#inputs').text
    # the form: a missing input is named beside its field, nothing is created
    b.find('#name-basic').send_keys('web1')
    b.find('#input-hpc_user').send_keys(bed_inputs['hpc_user'])
    b.find('#create-basic').click()
    error = b.until(lambda: b.find('#error-hpc_host'), 30, 'an error beside hpc_host')
    assert 'hpc_host' in error.text and 'required' in error.text
    assert b.find('#name-basic').get_attribute('value') == 'web1'
    assert b.find('#input-partition').tag_name == 'select'      # valid_values
    assert portal.get('/api/v1/instances').json() == []
    for name in ('hpc_host', 'hpc_port', 'hpc_private_key_file', 'hpc_known_hosts'):
        field = b.find(f'#input-{name}')
        field.clear()
        field.send_keys(str(bed_inputs[name]))
    b.find('#create-basic').click()
    b.until(lambda: b.driver.current_url.endswith('/instances/web1'), 60, 'created')
    b.note()
    # installed, then executed on the bed's SLURM; the table follows without reloading
    b.until(lambda: 'install' in b.find('#executions').text
            and 'completed' in b.find('#executions').text, 60, 'installed')
    marker = b.driver.execute_script('window.croupierMarker = 1; return 1')
    b.find('#btn-execute').click()
    b.until(lambda: 'run_jobs started' in b.find('#message').text, 30, 'started')
    b.driver.execute_script('window.croupierMarker = 1')
    states = b.until(lambda: (s := b.job_states()) and set(s.values()) == {'COMPLETED'} and s,
                     90, 'all COMPLETED')
    assert set(states) == {'hello', 'work', 'check'}
    assert b.driver.execute_script('return window.croupierMarker') == marker   # no reload
    assert {g.get_attribute('class') for g in b.finds('#dag g.job')} == {'job state-COMPLETED'}
    # a bar per job: queue wait and run, or one span when it ended between two polls
    bars = [r.get_attribute('class') for r in b.finds('#gantt svg rect')]
    assert len([c for c in bars if c in ('run', 'span')]) == 3, bars
    # the execution ends after its last job (the worker still records the run): the
    # page follows it without reloading
    b.until(lambda: b.find('#instance-state').text == 'completed', 30, 'execution completed')
    assert b.driver.execute_script('return window.croupierMarker') == marker
    # a job's stdout, on demand
    b.click_output('hello_', 'stdout')
    b.until(lambda: b.find('#output').text.startswith('hello from '), 30, 'stdout shown')
    # logs, filtered by event type
    b.driver.refresh()
    from selenium.webdriver.support.ui import Select
    Select(b.find('#log-type')).select_by_visible_text('workflow_started')
    b.find('#log-filter').click()
    b.note()
    rows = b.until(lambda: b.finds('#logs tbody tr'), 20, 'filtered logs')
    assert len(rows) == 2 and all('workflow_started' in r.text for r in rows)
    # the dashboard lists it
    b.open('/')
    assert 'web1' in b.find('#instances').text and 'completed' in b.find('#instances').text


def test_cancel_a_running_execution_and_read_a_failing_jobs_stderr(browser, portal,
                                                                   bed_inputs):
    b = browser
    assert portal.upload('slurm-app').status_code == 201
    for name, extra in (('long', {'work_seconds': 300}), ('bad', {'fail': True})):
        created = portal.post('/api/v1/instances', json={
            'application': 'slurm-app', 'name': name, 'inputs': dict(bed_inputs, **extra)})
        assert created.status_code == 202, created.text
    for name in ('long', 'bad'):
        portal.wait_idle(name, 60)
        b.open(f'/instances/{name}')
        b.find('#btn-execute').click()
        b.until(lambda: 'run_jobs started' in b.find('#message').text, 30, 'started')
    # cancel the long one while `work` runs
    b.open('/instances/long')
    b.until(lambda: b.job_states().get('work') == 'RUNNING', 60, 'work RUNNING')
    b.find('#btn-cancel').click()
    b.until(lambda: 'cancel requested' in b.find('#message').text, 30, 'cancel requested')
    b.until(lambda: b.job_states().get('work') == 'CANCELLED', 60, 'work CANCELLED')
    b.until(lambda: b.find('#executions tbody tr td.status').text == 'cancelled', 30,
            'execution cancelled')
    assert 'state-CANCELLED' in b.find('#dag g.job[data-job="work"]').get_attribute('class')
    # the failing one: its state, the execution's error and the job's stderr
    b.open('/instances/bad')
    b.until(lambda: b.job_states().get('check') == 'FAILED', 60, 'check FAILED')
    b.until(lambda: 'input deck is corrupt' in b.find('#executions').text, 30,
            'the error in the executions')
    b.click_output('check_', 'stderr')
    b.until(lambda: 'input deck is corrupt' in b.find('#output').text, 30, 'stderr shown')
    assert 'state-FAILED' in b.find('#dag g.job[data-job="check"]').get_attribute('class')


def test_expert_editor_errors_are_shown_beside_it(browser, portal):
    b = browser
    assert portal.upload('shell-app').status_code == 201
    b.open('/applications/shell-app')
    b.find('details:nth-of-type(2) summary').click()
    b.find('#name-expert').send_keys('expert1')
    editor = b.find('#expert_yaml')
    editor.clear()
    editor.send_keys('pause: [1, 2\n')
    b.find('#create-expert').click()
    error = b.until(lambda: b.find('#error-expert_yaml'), 30, 'an error beside the editor')
    assert 'line' in error.text
    editor = b.find('#expert_yaml')
    editor.clear()
    editor.send_keys('pause: 900\napi_token: s3cr3t-value\n')
    b.find('#create-expert').click()
    # the page with the first error stays until the answer arrives: wait for the new one
    error = b.until(lambda: 'pause' in (found := b.find('#error-expert_yaml')).text and found,
                    30, 'a constraint error')
    assert 'pause' in error.text and 's3cr3t-value' not in b.driver.page_source
    assert portal.get('/api/v1/instances').json() == []
    # the password field of a secret
    assert b.find('#input-api_token').get_attribute('type') == 'password'


def test_the_dashboard_follows_instances_without_reloading(browser, portal):
    b = browser
    b.open('/')
    assert 'No instance yet' in b.find('main').text
    b.driver.execute_script('window.croupierMarker = 7')
    assert portal.upload('shell-app').status_code == 201
    created = portal.post('/api/v1/instances', json={
        'application': 'shell-app', 'name': 'live', 'inputs': {'api_token': 'abcdefgh',
                                                               'pause': 0}})
    assert created.status_code == 202, created.text

    def row() -> tuple[str, str]:
        """The dashboard's row of 'live': its text and its state."""
        found = b.find('#instances tbody tr[data-instance="live"]')
        return found.text, found.find_element('css selector', 'td.state').text
    b.until(lambda: 'install' in row()[0] and row()[1] == 'completed', 60, 'installed')
    assert 'No instance yet' not in b.find('main').text      # only visible text counts
    assert portal.post('/api/v1/instances/live/executions', json={}).status_code == 202
    b.until(lambda: 'run_jobs' in row()[0] and row()[1] == 'completed'
            and 'COMPLETED 2' in row()[0], 60, 'run_jobs completed')
    assert b.driver.execute_script('return window.croupierMarker') == 7    # no reload
    assert b.find('#instances tbody tr[data-instance="live"] a').get_attribute(
        'href').endswith('/instances/live')
