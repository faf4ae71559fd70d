"""The original Croupier's interface settings Croupier acts on, in their pure parts:
country_tz and recurrent reservations, the reservation deletion command, the host an
interface takes from interface_contained_in, the exporter's only_jobs scrape."""

from __future__ import annotations

import shlex
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from cloudify.exceptions import NonRecoverableError

from croupier_plugin import edge
from croupier_plugin.core import blueprint
from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.infrastructure import InfrastructureSettings
from croupier_plugin.core.schedulers.pbs import PbsScheduler
from croupier_plugin.core.schedulers.slurm import SlurmScheduler

LOGIN = {'host': 'login.example.org', 'user': 'u', 'password': 'pw'}


def settings(**config) -> InfrastructureSettings:
    """A SLURM interface with ``config`` added to its config."""
    return InfrastructureSettings.from_properties('hpc', {
        'config': dict(infrastructure_interface='SLURM', **config), 'credentials': LOGIN})


def test_a_recurrent_reservation_is_named_with_the_date_of_the_interface_time_zone():
    """Kiritimati (UTC+14) and Niue (UTC-11) are on different dates at every moment
    between 10:00 and 13:00 UTC, and on the same date never when it is 11:00-12:00
    UTC in one of them; the name follows the interface's zone, not the orchestrator's."""
    options = {'job_options': {'commands': ['x'], 'reservation': 'daily_%Y%m%d',
                               'recurrent_reservation': True}}
    for zone in ('Pacific/Kiritimati', 'Pacific/Niue', 'GMT'):
        before = datetime.now(ZoneInfo(zone)).strftime('daily_%Y%m%d')
        spec = blueprint.job_spec('j', 'j1', options, settings(country_tz=zone))
        after = datetime.now(ZoneInfo(zone)).strftime('daily_%Y%m%d')
        assert spec.reservation in (before, after)
    east = blueprint.job_spec('j', 'j1', options, settings(country_tz='Pacific/Kiritimati'))
    west = blueprint.job_spec('j', 'j1', options, settings(country_tz='Pacific/Niue'))
    # 25 hours apart: never the same date
    assert east.reservation != west.reservation


def test_a_reservation_without_recurrent_reservation_is_taken_as_written():
    spec = blueprint.job_spec('j', 'j1', {'job_options': {'commands': ['x'],
                                                          'reservation': 'daily_%Y%m%d'}},
                              settings(country_tz='Europe/Madrid'))
    assert spec.reservation == 'daily_%Y%m%d'


@pytest.mark.parametrize('zone', ['Mars/Olympus', '../../etc/passwd', '', 'Europe/Madrid\nx',
                                  5])
def test_a_country_tz_that_is_no_time_zone_is_refused_by_name(zone):
    if zone == '':
        assert settings(country_tz=zone).country_tz == 'GMT'
        return
    with pytest.raises(ConfigError, match=r"node 'hpc', property 'config.country_tz' = "):
        settings(country_tz=zone)


def test_the_reservation_deletion_command_quotes_path_and_name():
    command = settings(reservation_deletion_path='/opt/site/sres delete') \
        .reservation_deletion_command("r'; rm -rf ~")
    assert shlex.split(command) == ['/opt/site/sres delete', "r'; rm -rf ~"]
    home = settings(reservation_deletion_path='~/bin/sresdelete') \
        .reservation_deletion_command('r1')
    assert home == '"$HOME"/bin/sresdelete r1'


def test_the_contained_in_host_is_the_target_ip_and_a_given_host_wins():
    assert edge.contained_host('hpc', 'vm', {'ip': '10.0.0.5'}, {}) == '10.0.0.5'
    # the runtime ip a cloud plugin set wins over the property
    assert edge.contained_host('hpc', 'vm', {'ip': '10.0.0.5'}, {'ip': '192.0.2.7'}) == \
        '192.0.2.7'
    props = {'config': {'infrastructure_interface': 'SLURM'},
             'credentials': {'user': 'u', 'password': 'pw'}}
    assert edge.interface_settings('hpc', props, host='10.0.0.5').ssh.host == '10.0.0.5'
    given = dict(props, credentials=dict(LOGIN))
    assert edge.interface_settings('hpc', given, host='10.0.0.5').ssh.host == \
        'login.example.org'
    with pytest.raises(NonRecoverableError, match="node 'hpc', property 'credentials.host' "
                                                  "= None: is required: give it, or an ip "
                                                  "to node 'vm'"):
        edge.contained_host('hpc', 'vm', {'ip': ''}, {})


def test_only_jobs_scrapes_leave_the_partition_figures_out():
    for scheduler in (SlurmScheduler(), PbsScheduler()):
        full = scheduler.exporter_command(['12'])
        jobs = scheduler.exporter_command(['12'], partitions=False)
        clock, rest = jobs.split('; ', 1)
        # the same command without the figures between the clock and the jobs part
        assert jobs != full and full.startswith(clock + '; ') and full.endswith(rest)
        assert 'sinfo' not in jobs and 'qstat -Q' not in jobs and 'pbsnodes' not in jobs
        partitions, _, _ = scheduler.parse_exporter_output('', ['12'])
        assert partitions == []
