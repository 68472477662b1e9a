/* libyaml (libyaml-dev): the config file's parser. */
#include <yaml.h>
