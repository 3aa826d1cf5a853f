/*
 * tuap-ctl: the operator's command line. The subcommands and their table are in cmd/.
 */
#include "cli.h"

int main(int argc, char **argv)
{
	return cli_run(argc, argv);
}
