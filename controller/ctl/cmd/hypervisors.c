/* tuap-ctl hypervisors: each hypervisor of tuapd.conf, as libvirt reports it now. */
#include "cli.h"

int cmd_hypervisors(const struct cli_args *a)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__HypervisorsRequest hr = TUAP__HYPERVISORS_REQUEST__INIT;

	req.req_case = TUAP__CTL_REQUEST__REQ_HYPERVISORS;
	req.hypervisors = &hr;
	return cli_daemon_request(&req, NULL, NULL, cli_flag(a, "json"), false);
}
